// Type declarations of zoho-token-store/v2's ES module entry: those of the
// CommonJS entry (v2.d.cts), which it re-exports.
export * from "./v2.cjs";
export { default } from "./v2.cjs";
