/**
 * TLS settings every Portcullis HTTPS listener uses (edge, approval listener, audit API): TLS 1.2
 * at least, and on TLS 1.2 only forward-secret AEAD suites — what Mozilla's "intermediate"
 * profile allows. Node's default list also accepts CBC suites with SHA-1 MACs
 * (e.g. ECDHE-ECDSA-AES128-SHA); kubectl, client-go, curl and browsers all speak GCM or ChaCha20.
 * TLS 1.3 suites are not affected by `ciphers` (all three of OpenSSL's defaults are AEAD).
 */
export const SERVER_TLS_OPTIONS = {
  minVersion: 'TLSv1.2',
  ciphers: [
    'TLS_AES_128_GCM_SHA256',
    'TLS_AES_256_GCM_SHA384',
    'TLS_CHACHA20_POLY1305_SHA256',
    'ECDHE-ECDSA-AES128-GCM-SHA256',
    'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384',
    'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305',
    'ECDHE-RSA-CHACHA20-POLY1305',
  ].join(':'),
  honorCipherOrder: true,
} as const;
