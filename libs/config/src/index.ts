/** Configuration: parsed once at start-up into a frozen, typed object; unknown keys are errors. */
export { loadConfigFile, parseConfig, ConfigError } from './load-config.js';
export type { PortcullisConfig, PolicySource } from './load-config.js';
export { ConfigSchema } from './config.schema.js';
export type {
  ConnectionConfig,
  KubernetesConnectionConfig,
  HttpConnectionConfig,
  IssuerConfig,
  DevClientConfig,
  MaskingProfileConfig,
  ApprovalConfig,
  SlackUserConfig,
} from './config.schema.js';
export { parseDuration } from './duration.js';
