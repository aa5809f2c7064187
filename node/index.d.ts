// Type declarations of zoho-token-store's ES module entry: those of the
// CommonJS entry (index.d.cts), which it re-exports.
export * from "./index.cjs";
export { default } from "./index.cjs";
