"""The files a boot adds to the cached image: init glue, the runner, the scenario helpers.

They travel in a small cpio appended to the image's (concatenated cpio archives form one
initramfs), so changing them never rebuilds an image. Everything here is POSIX sh: the guests'
/bin/sh is dash.
"""

from __future__ import annotations

# rdinit: PID 1 until it execs systemd (systemd mode) or runs the scenario itself (init mode).
INIT = r"""#!/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^vm\.$1=//p"; }
if [ "$(arg state)" = 1 ]; then
    /vm/state-mount >/vm/state-mount.log 2>&1 || echo "vm: state disk failed" >/dev/ttyS0
fi
if [ "$(arg mode)" = systemd ]; then
    exec /lib/systemd/systemd
fi
mkdir -p /dev/pts /run
mount -t devpts devpts /dev/pts
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
exec /vm/runner init
"""

# The state disk keeps what a node keeps across reboots. cp -a carries xattrs (file capabilities)
# onto ext4, and bind mounts keep them: this is a stateful node, not a cpio-packed stateless one.
STATE_MOUNT = r"""#!/bin/sh
set -eu
for m in virtio_pci virtio_blk ext4; do modprobe "$m" 2>/dev/null || true; done
i=0
while [ ! -b /dev/vda ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mkdir -p /vm/state
mount -t ext4 /dev/vda /vm/state
for d in $(cat /vm/state-dirs); do
    if [ ! -d "/vm/state/$d" ]; then
        mkdir -p "/vm/state/$d"
        cp -a "/$d/." "/vm/state/$d/"
    fi
    mount --bind "/vm/state/$d" "/$d"
done
"""

INSTALL = r"""#!/bin/sh
set -eu
/opt/perfgroup/bin/pip install -q --no-index --no-deps --disable-pip-version-check --find-links /vm/wheels perfgroup jinja2 markupsafe
ln -sf /opt/perfgroup/bin/perfgroup /usr/local/bin/perfgroup
"""

# Runs once per boot. Results go to ttyS1, which carries nothing else (the kernel and systemd
# write to ttyS0), as a base64 gzip tar between markers with its sha256.
RUNNER = r"""#!/bin/sh
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
out=/vm/out
mkdir -p "$out/steps"
exec </dev/null
dmesg -n 1 2>/dev/null || true
start=$(cut -d' ' -f1 /proc/uptime)
/vm/install >"$out/install.log" 2>&1
echo $? >"$out/install.rc"
installed=$(cut -d' ' -f1 /proc/uptime)
cd /root
HOME=/root sh $(cat /vm/shell-flags) -c '. /vm/lib.sh; . /vm/scenario.sh' >"$out/stdout" 2>"$out/stderr"
echo $? >"$out/rc"
echo "$start $installed $(cut -d' ' -f1 /proc/uptime)" >"$out/uptime"
cp /vm/state-mount.log "$out/" 2>/dev/null || true
tar -C "$out" -czf /tmp/vm-out.tgz .
stty -F /dev/ttyS1 raw -echo 2>/dev/null || true
{
    echo "PERFGROUP-VM-BEGIN $(cat /vm/nonce)"
    base64 /tmp/vm-out.tgz
    echo "PERFGROUP-VM-END $(cat /vm/nonce) $(sha256sum /tmp/vm-out.tgz | cut -d' ' -f1)"
} >/dev/ttyS1
sync
if [ "$1" = systemd ]; then
    systemctl poweroff --no-block
else
    umount /vm/state 2>/dev/null || true
    echo o >/proc/sysrq-trigger
    # PID 1 must outlive the power-off request: its exit would panic the kernel.
    sleep 60
fi
"""

# Sourced before the scenario. Each step's output and exit code are kept apart, and a failing
# step never ends the scenario: the host asserts on every step.
LIB = r"""
_vm_step_n=0
step() {
    _vm_step_n=$((_vm_step_n + 1))
    _vm_d=/vm/out/steps/$(printf %03d "$_vm_step_n")
    mkdir -p "$_vm_d"
    printf '%s' "$1" >"$_vm_d/name"
    shift
    case $- in *e*) _vm_e=-e ;; *) _vm_e=+e ;; esac
    set +e
    # A step that hangs is killed (its whole process group) and reported with rc 124, so one stuck
    # command fails its step instead of the boot; a fresh sh with this library runs shell functions.
    timeout --kill-after=10 "${VM_STEP_TIMEOUT:-150}" sh -c '. /vm/lib.sh; "$@"' step "$@" \
        >"$_vm_d/stdout" 2>"$_vm_d/stderr" </dev/null
    echo $? >"$_vm_d/rc"
    set "$_vm_e"
    return 0
}
step_sh() {
    step "$1" sh -c "$2"
}
# Run shell text as USER with USER's groups. The sh in between matters: setpriv still holds root's
# effective capabilities at its own execve, so it must not exec the file under test itself.
as_user() {
    _vm_home=$(getent passwd "$1" | cut -d: -f6)
    setpriv --reuid="$1" --regid="$1" --init-groups \
        env -i HOME="$_vm_home" USER="$1" LOGNAME="$1" PATH=/usr/local/bin:/usr/bin:/bin sh -c "$2"
}
step_as() {
    step "$1" as_user "$2" "$3"
}
"""

UNIT = r"""[Unit]
Description=perfgroup VM scenario
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/vm/runner systemd
StandardOutput=journal+console
StandardError=journal+console
"""
