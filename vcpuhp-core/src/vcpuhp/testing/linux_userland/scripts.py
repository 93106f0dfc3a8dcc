"""The userland's shell scripts (busybox ``sh``), generated from :mod:`.protocol`.

* ``/init`` (PID 1): mounts proc, sysfs and devtmpfs, loads the modules in
  ``/lib/modules``, reports the kernel log's warnings and firmware complaints,
  prints the masks, starts the masks watcher, the uevent listener and
  ``acpid``, then obeys console commands forever.
* the **masks watcher** (a subshell of ``/init``) reads the four sysfs masks
  with shell built-ins only (no process per poll) and prints them when they
  differ from what it printed last. It sleeps in ``read -t 1`` on a FIFO, so
  it polls once a second when idle and wakes at once when
* the **uevent hook** (``/etc/vcpuhp/uevent``, run by busybox ``uevent`` for
  every kernel uevent) writes to that FIFO for an event under
  ``/devices/system/cpu/cpuN``: a CPU registered or unregistered (ACPI hotplug
  makes it enabled or not) or onlined or offlined. Linux marks a hot-added CPU
  enabled just *after* its ``add`` uevent (``register_cpu``), so after a
  wake-up the watcher polls every 50 ms for half a second before it goes
  back to once a second.
* the **power button action** (``/etc/acpi/PWRF/00000080``, the file busybox
  ``acpid`` runs for ``KEY_POWER`` from the ACPI power button's input device;
  Debian builds that device's ``evdev`` as a module, so it must be given)
  powers off with ``poweroff -f``: Linux calls PSCI ``SYSTEM_OFF``.
"""

from __future__ import annotations

from typing import Final

from vcpuhp.testing.linux_userland import protocol

RUN_DIR: Final = "/run/vcpuhp"
WAKE_FIFO: Final = f"{RUN_DIR}/wake"
UEVENT_HOOK: Final = "etc/vcpuhp/uevent"
POWER_ACTION: Final = "etc/acpi/PWRF/00000080"
"""busybox ``acpid``'s built-in action for the power key, relative to its ``/etc/acpi``."""
CPU_SYSFS: Final = "/sys/devices/system/cpu"
SETTLE_POLLS: Final = 10
SETTLE_INTERVAL: Final = "0.05"
"""After a CPU uevent the masks watcher polls this often (seconds), this many times."""


def _case_patterns(patterns: tuple[str, ...]) -> str:
    return "|".join(f'*"{pattern}"*' for pattern in patterns)


def init_script() -> str:
    """``/init``."""
    commands = "|".join(protocol.COMMANDS)
    return f"""#!/bin/sh
# The vcpuhp Linux test userland, PID 1 (vcpuhp.testing.linux_userland).
export PATH=/bin
cpu={CPU_SYSFS}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p {RUN_DIR}
stty -echo 2>/dev/null
for module in /lib/modules/*.ko; do
    [ -e "$module" ] || continue
    insmod "$module" || echo "userland: insmod $module failed"
done

dmesg -r | while read -r entry; do
    case "$entry" in
    "<"[0-4]">"*|{_case_patterns(protocol.KLOG_PATTERNS)}) echo "{protocol.KLOG_PREFIX}$entry";;
    esac
done
echo "{protocol.KLOG_END}"

read_masks() {{
    read -r possible < $cpu/possible
    read -r present < $cpu/present
    read -r enabled < $cpu/enabled
    read -r online < $cpu/online
    masks="possible $possible present $present enabled $enabled online $online"
}}
read_masks
echo "$masks"
mkfifo {WAKE_FIFO}
(
    exec 3<>{WAKE_FIFO}
    last=$masks
    timeout=1
    settle=0
    while :; do
        if read -r -t $timeout -u 3 _; then
            settle={SETTLE_POLLS}
        fi
        read_masks
        if [ "$masks" != "$last" ]; then
            echo "$masks"
            last=$masks
        fi
        if [ $settle -gt 0 ]; then
            settle=$((settle - 1))
            timeout={SETTLE_INTERVAL}
        else
            timeout=1
        fi
    done
) &
uevent /{UEVENT_HOOK} &
if [ -e /dev/input/event0 ]; then
    acpid -f -c /etc/acpi -l {RUN_DIR}/acpid.log &
else
    echo "userland: no input event device (no evdev module): the power button cannot power off"
fi
echo "{protocol.READY}"

while read -r command number rest; do
    case "$command" in
    {commands})
        case "$number" in
        ''|*[!0-9]*) echo "userland: usage: $command N (a CPU number)"; continue;;
        esac
        value=1
        [ "$command" = offline ] && value=0
        if error=$( {{ echo $value > $cpu/cpu$number/online; }} 2>&1 ); then
            echo "$command $number ok"
        else
            # the shell's message without its "/init: line N: " (or "sh: ") prefix
            error=${{error#sh: }}
            echo "$command $number failed: ${{error#*: line [0-9]*: }}"
        fi
        ;;
    '') ;;
    *) echo "userland: unknown command '$command' (commands: online N, offline N)";;
    esac
done
echo "userland: the console closed"
while :; do sleep 3600; done
"""


def uevent_hook() -> str:
    """``/etc/vcpuhp/uevent``: wake the masks watcher for a CPU's uevent."""
    return f"""#!/bin/sh
case "$DEVPATH" in
/devices/system/cpu/cpu[0-9]*) echo 1<>{WAKE_FIFO};;
esac
"""


def power_action() -> str:
    """``/etc/acpi/PWRF/00000080``: the power button powers the machine off."""
    return f"""#!/bin/sh
echo "{protocol.POWER_BUTTON}" > /dev/console
poweroff -f
"""


__all__ = ["POWER_ACTION", "UEVENT_HOOK", "WAKE_FIFO", "init_script", "power_action",
           "uevent_hook"]
