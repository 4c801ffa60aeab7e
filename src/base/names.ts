/**
 * The one rule for what a node may be called: a DNS label (it becomes
 * NAME.aos-unit), 1-63 letters, digits or "-", not starting or ending with
 * "-". The config parser, the launcher (which names a node's sockets from it)
 * and console/powerdown all check this same rule.
 */

export const NODE_NAME = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

export function isNodeName(text: string): boolean {
  return NODE_NAME.test(text);
}

/**
 * Why dnsmasq would not read a node name as a name in `dhcp-host=MAC,NAME,...`
 * (undefined when it would): "ignore" disables DHCP for that MAC, "infinite",
 * bare numbers and durations such as "12h" are taken as a lease time.
 */
export function dnsmasqMisreads(name: string): string | undefined {
  const lower = name.toLowerCase();
  if (lower === "ignore") return 'dnsmasq would take it as "ignore" and give the node no address';
  if (lower === "infinite" || /^[0-9]+[smhdw]?$/.test(lower)) {
    return "dnsmasq would take it as a lease time and give the node no name";
  }
  return undefined;
}
