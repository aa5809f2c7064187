// The store classes of one entry of the package, one per Zoho SDK, made when
// first asked for: the class the entry exports is the default SDK's, and its
// constructor's `sdk` option gets another's here.
"use strict";

/**
 * The classes that `defineClass(sdk, { NativeStore, storeFor, isStore })`
 * makes (an object with a SecretsManagerStore), for the SDKs `load(name)`
 * loads: `{ define(sdk), storeFor(name), isStore(value) }`. `isStore` says
 * whether a value is a store of any class made, whichever SDK.
 */
function storeClasses({ NativeStore, load, defineClass }) {
  /** The classes made so far, by SDK name. */
  const classes = new Map();
  const brands = new Set();

  /** The SecretsManagerStore class for SDK `name` (the default one when undefined). */
  function storeFor(name) {
    const sdk = load(name); // throws, naming the SDK and the folders, when it is not installed
    if (!classes.has(sdk.name)) define(sdk);
    return classes.get(sdk.name).SecretsManagerStore;
  }

  /** Whether `value` is a store of any of the classes made. */
  function isStore(value) {
    for (const Class of brands) {
      if (Function.prototype[Symbol.hasInstance].call(Class, value)) return true;
    }
    return false;
  }

  /** The classes for `sdk` (undefined: none installed, a class whose constructor says so). */
  function define(sdk) {
    const defined = defineClass(sdk, { NativeStore, storeFor, isStore });
    if (sdk) classes.set(sdk.name, defined);
    brands.add(defined.SecretsManagerStore);
    return defined;
  }

  return { define, storeFor, isStore };
}

exports.storeClasses = storeClasses;
