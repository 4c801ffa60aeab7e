/** Replaced at package build time (packaging/build_package.sh). */
export const VERSION = "0.0.0-dev";
