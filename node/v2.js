// zoho-token-store/v2's ES module entry: the CommonJS entry's exports (one
// class for an application that both imports and requires it).
import cjs from "./v2.cjs";

export const { SecretsManagerStore, RefreshError, TOKEN_STORE, SUPPORTED_SDKS } = cjs;
export default SecretsManagerStore;
