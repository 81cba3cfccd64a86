#!/bin/busybox sh
# /init of the VM test's initramfs (tools/vm/mkinitrd.sh): loads the kernel drivers, runs each
# check against them and prints one line per check, "VMCHECK PASS name: ..." or
# "VMCHECK FAIL name: ...", then "VMCHECK DONE failures=N" and powers off. tools/vm-test.sh reads
# these lines from the serial console; nothing else in the output is parsed.
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev; mount -t tmpfs tmp /tmp
mkdir -p /tmp/fg
export RUST_LOG=${RUST_LOG:-info} PATH=/bin:/sbin
failures=0
pass() { echo "VMCHECK PASS $1: $2"; }
fail() { echo "VMCHECK FAIL $1: $2"; failures=$((failures + 1)); }
# /proc/uptime in centiseconds, without a fork per sample ("123.45" -> 12345)
uptime_cs() { read up _ < /proc/uptime; echo $(( ${up%.*} * 100 + 1${up#*.} - 100 )); }
show() { sed 's/^/    | /' "$1"; }

# --- camera: vivid's capture node through facegate's V4L2 source (YUYV 640x480) --------------
check_camera() {
  if ! modprobe vivid n_devs=1 node_types=0x1 2>/tmp/mod.err; then
    fail camera "modprobe vivid: $(cat /tmp/mod.err)"; return
  fi
  [ -e /dev/video0 ] || { fail camera "vivid loaded but no /dev/video0"; return; }
  t0=$(uptime_cs)
  facegate camera check --config /facegate/camera.toml --frames 3 --out /tmp/cc > /tmp/cc.log 2>&1
  rc=$?
  t1=$(uptime_cs)
  show /tmp/cc.log
  # exit 1 = frames checked, no face passing the gates: right for vivid's test pattern
  if [ "$rc" -le 1 ] && grep -q "of 3 frames had a face" /tmp/cc.log; then
    pass camera "3 frames from /dev/video0 (vivid, yuyv 640x480) checked in $(( (t1 - t0) * 10 )) ms (models load included)"
  else
    fail camera "facegate camera check exited $rc"
  fi
}

# --- gpio: a gpio-sim chip (built out of tree, tools/vm/build-gpio-sim.sh) ---------------------
gpio_chip() {
  modprobe configfs 2>/dev/null; mount -t configfs none /config || return 1
  modprobe gpio-sim-oot || return 1
  c=/config/gpio-sim/door
  mkdir $c && mkdir $c/bank0 && echo 4 > $c/bank0/num_lines || return 1
  i=0
  for name in relay button contact spare; do
    mkdir $c/bank0/line$i && echo $name > $c/bank0/line$i/name || return 1
    i=$((i + 1))
  done
  echo 1 > $c/live || return 1
  SIM=$(ls -d /sys/devices/platform/gpio-sim.*/gpiochip* | head -1)
  [ -e /dev/gpiochip0 ] && [ -n "$SIM" ]
}

# --- relay: one `facegate lock test` pulse, observed on the simulated line's value -----------
check_relay() {
  v=$SIM/sim_gpio0/value
  read before < $v
  facegate lock test --config /facegate/gpio.toml > /tmp/lt.log 2>&1 &
  pid=$!
  on=; off=; pulses=0; prev=0; start=$(uptime_cs)
  # sample until the pulse ended and the command exited, or 20 s
  while :; do
    read x < $v; now=$(uptime_cs)
    if [ "$x" = 1 ] && [ "$prev" = 0 ]; then pulses=$((pulses + 1)); [ -z "$on" ] && on=$now; fi
    if [ "$x" = 0 ] && [ "$prev" = 1 ]; then off=$now; fi
    prev=$x
    if [ -n "$off" ] && ! grep -q '^State:.*[RS]' /proc/$pid/status 2>/dev/null; then break; fi
    [ $((now - start)) -gt 2000 ] && break
  done
  wait $pid; rc=$?
  read after < $v
  show /tmp/lt.log
  len=
  [ -n "$on" ] && [ -n "$off" ] && len=$(( (off - on) * 10 ))
  if [ "$rc" = 0 ] && [ "$before" = 0 ] && [ "$after" = 0 ] && [ "$pulses" = 1 ] \
     && [ -n "$len" ] && [ "$len" -ge 950 ] && [ "$len" -le 1300 ]; then
    pass relay "safe level 0 before and after, one pulse of ${len} ms (configured 1000; sampled via /proc/uptime, +-20 ms)"
  else
    fail relay "rc=$rc before=$before after=$after pulses=$pulses length=${len:-none} ms (configured 1000)"
  fi
}

echo "VMCHECK START kernel $(uname -r)"
check_camera
if [ -e /lib/modules/$(uname -r)/extra/gpio-sim-oot.ko ]; then
  if gpio_chip; then
    check_relay
  else
    fail gpio-sim "could not create the gpio-sim chip (configfs, gpio-sim-oot.ko)"
  fi
else
  fail gpio-sim "gpio-sim-oot.ko is not in the initramfs (tools/vm/build-gpio-sim.sh)"
fi
echo "VMCHECK DONE failures=$failures"
poweroff -f
