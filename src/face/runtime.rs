//! One place where ONNX bytes become an optimised tract plan, with the input name and shape
//! and the output names checked against the manifest, and a reusable per-worker runner that
//! keeps tract's state and its input buffer between calls.

use crate::error::{Error, Result};
use std::path::Path;
use std::sync::Arc;
use tract_onnx::prelude::*;

pub type Plan = Arc<TypedRunnableModel>;

/// Loads, checks and optimises a model for a fixed input shape.
pub fn load_plan(
    bytes: &[u8],
    origin: &Path,
    input_name: &str,
    input_shape: &[usize],
    outputs: &[&str],
) -> Result<Plan> {
    let fail = |what: &str, e: &dyn std::fmt::Display| Error::Model {
        path: origin.to_path_buf(),
        reason: format!("{what}: {e}"),
    };
    let mut model = tract_onnx::onnx()
        .model_for_read(&mut std::io::Cursor::new(bytes))
        .map_err(|e| fail("not a loadable ONNX model", &e))?;
    let inputs = model
        .input_outlets()
        .map_err(|e| fail("inputs", &e))?
        .to_vec();
    if inputs.len() != 1 {
        return Err(fail("expects exactly one input", &inputs.len()));
    }
    let actual = model.node(inputs[0].node).name.clone();
    if actual != input_name {
        return Err(fail(
            "input name differs from the manifest",
            &format!("model has {actual:?}, manifest says {input_name:?}"),
        ));
    }
    let mut outlets = Vec::with_capacity(outputs.len());
    for name in outputs {
        let outlet = model.find_outlet_label(name).ok_or_else(|| {
            fail(
                "output missing",
                &format!("no output named {name:?} (manifest and model disagree)"),
            )
        })?;
        outlets.push(outlet);
    }
    model
        .select_output_outlets(&outlets)
        .map_err(|e| fail("outputs", &e))?;
    let model = model
        .with_input_fact(0, f32::fact(input_shape).into())
        .map_err(|e| fail("input shape", &e))?
        .into_optimized()
        .map_err(|e| {
            fail(
                &format!("cannot be optimised for input shape {input_shape:?}"),
                &e,
            )
        })?
        .into_runnable()
        .map_err(|e| fail("cannot be planned", &e))?;
    Ok(model)
}

/// A per-worker runner: tract state plus a reusable input tensor.
pub struct Runner {
    state: TypedSimpleState,
    input: Arc<Tensor>,
    stage: &'static str,
}

impl Runner {
    pub fn new(plan: &Plan, input_shape: &[usize], stage: &'static str) -> Result<Self> {
        let state = plan.spawn().map_err(|e| Error::Inference {
            stage,
            reason: e.to_string(),
        })?;
        Ok(Runner {
            state,
            input: Arc::new(
                Tensor::zero::<f32>(input_shape).map_err(|e| Error::Inference {
                    stage,
                    reason: e.to_string(),
                })?,
            ),
            stage,
        })
    }

    /// Fills the input in place (`fill` receives the flat NCHW buffer), runs the model and
    /// returns its outputs.
    pub fn run(&mut self, fill: impl FnOnce(&mut [f32])) -> Result<TVec<TValue>> {
        let stage = self.stage;
        let err = |e: &dyn std::fmt::Display| Error::Inference {
            stage,
            reason: e.to_string(),
        };
        {
            // tract hands the input back (drops its references) once a run is over, so the
            // buffer is reused; a fresh one is made only if something still holds it.
            let tensor = match Arc::get_mut(&mut self.input) {
                Some(t) => t,
                None => {
                    let shape = self.input.shape().to_vec();
                    self.input = Arc::new(Tensor::zero::<f32>(&shape).map_err(|e| err(&e))?);
                    Arc::get_mut(&mut self.input).expect("fresh Arc is unique")
                }
            };
            let mut view = tensor
                .to_plain_array_view_mut::<f32>()
                .map_err(|e| err(&e))?;
            let slice = view
                .as_slice_mut()
                .expect("a fresh f32 tensor is contiguous");
            fill(slice);
        }
        self.state
            .run(tvec!(self.input.clone().into_tvalue()))
            .map_err(|e| err(&e))
    }
}

/// Flat f32 contents of an output, borrowed.
pub fn output_slice<'a>(v: &'a TValue, stage: &'static str) -> Result<&'a [f32]> {
    let view = v
        .to_plain_array_view::<f32>()
        .map_err(|e| Error::Inference {
            stage,
            reason: e.to_string(),
        })?;
    view.to_slice().ok_or(Error::Inference {
        stage,
        reason: "output tensor is not contiguous".into(),
    })
}
