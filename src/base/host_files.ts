/** Well-known files and sockets of the host that aos-unit reads or talks to. */

export const SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket";
export const NOTIFY_SOCKET_DEFAULT = "/run/systemd/notify";
export const MACHINE_ID_FILE = "/etc/machine-id";
export const PASSWD_FILE = "/etc/passwd";
export const GROUP_FILE = "/etc/group";
export const FIRMWARE_DIRS = ["/usr/share/OVMF", "/usr/share/AAVMF"] as const;
/** What `aos-unit doctor` looks at besides the usual places. */
export const POLKIT_RULES = "/usr/share/polkit-1/rules.d/50-aos-unit.rules";
export const PROC_CGROUPS = "/proc/cgroups";
/** The shipped sample configuration (`aos-unit plan --config-dir` it). */
export const EXAMPLES_DIR = "/usr/share/aos-unit/examples";
/** The installed executable (the broker starts `aos-unit prepare` through it). */
export const EXECUTABLE = "/usr/bin/aos-unit";
