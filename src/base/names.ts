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
