//! The door: the decision [`policy`] (who may enter, when, after how much evidence) and the
//! [`lock`] output that drives the strike or maglock relay.

pub mod controller;
pub mod gpiocdev_out;
pub mod line;
pub mod lock;
pub mod policy;
pub mod rppal_out;
pub mod sim;
