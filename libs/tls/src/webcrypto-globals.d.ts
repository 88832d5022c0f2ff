// @peculiar/x509's typings name the DOM WebCrypto globals; the project compiles without lib "dom",
// so alias them to Node's identical webcrypto types instead of pulling DOM into every file.
import type { webcrypto } from 'node:crypto';

declare global {
  type BufferSource = webcrypto.BufferSource;
  type KeyUsage = webcrypto.KeyUsage;
  type AlgorithmIdentifier = webcrypto.AlgorithmIdentifier;
  interface Crypto extends webcrypto.Crypto {}
  interface CryptoKey extends webcrypto.CryptoKey {}
  interface CryptoKeyPair extends webcrypto.CryptoKeyPair {}
  interface Algorithm extends webcrypto.Algorithm {}
  interface EcKeyGenParams extends webcrypto.EcKeyGenParams {}
  interface EcKeyImportParams extends webcrypto.EcKeyImportParams {}
  interface EcdsaParams extends webcrypto.EcdsaParams {}
  interface RsaHashedImportParams extends webcrypto.RsaHashedImportParams {}
}
