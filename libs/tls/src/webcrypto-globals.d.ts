// @peculiar/x509's typings name the DOM WebCrypto globals; the project compiles without lib "dom",
// so alias them to Node's identical webcrypto types instead of pulling DOM into every file.
import type { webcrypto } from 'node:crypto';

declare global {
  type BufferSource = webcrypto.BufferSource;
  type KeyUsage = webcrypto.KeyUsage;
  type AlgorithmIdentifier = webcrypto.AlgorithmIdentifier;
  type Crypto = webcrypto.Crypto;
  type CryptoKey = webcrypto.CryptoKey;
  type CryptoKeyPair = webcrypto.CryptoKeyPair;
  type Algorithm = webcrypto.Algorithm;
  type EcKeyGenParams = webcrypto.EcKeyGenParams;
  type EcKeyImportParams = webcrypto.EcKeyImportParams;
  type EcdsaParams = webcrypto.EcdsaParams;
  type RsaHashedImportParams = webcrypto.RsaHashedImportParams;
}
