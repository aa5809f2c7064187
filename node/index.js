// zoho-token-store's ES module entry: the CommonJS entry's exports (one
// class for an application that both imports and requires the package).
import cjs from "./index.cjs";

export const { SecretsManagerStore, RefreshError, fromSdkToken, toSdkToken, TOKEN_STORE, SUPPORTED_SDKS } = cjs;
export default SecretsManagerStore;
