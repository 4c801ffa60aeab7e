/**
 * The names of a unit's files, as base/unit_identity.ts names its units and links (lima's
 * filenames beside its dirnames): a leaf with no imports, so the lease hook, which starts
 * cold on every DHCP acknowledgement, loads nothing else for them. Where each file lives
 * is plan/layout.ts.
 */

/** The lease record's file name (in the unit's DHCP directory). */
export const LEASE_RECORD = "leases.json";

/**
 * The environment variable that names the unit a process works for: set in a named unit's
 * service and its transient units (their hooks act on that unit alone); --unit overrides it.
 */
export const UNIT_NAME_ENV = "AOS_UNIT_NAME";
