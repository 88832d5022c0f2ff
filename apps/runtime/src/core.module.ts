import { Inject, Injectable, Module, type DynamicModule, type InjectionToken, type OnApplicationShutdown, type Provider } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { PortcullisConfig } from '@portcullis/config';
import type { Logger } from '@portcullis/common';
import type { MessageBus } from '@portcullis/bus';
import { Streams } from '@portcullis/contracts';
import { EvidenceReadRecorder } from '@portcullis/audit-store/pure';
import type { EventLog } from '@portcullis/bus';
import { createPortcullisMetrics, Readiness, type Tracing } from '@portcullis/observability';
import type { DevIssuer } from '@portcullis/identity';
import { BusServeGate } from './bus-transport/bus-serve-gate.js';
import { BusTransportStrategy } from './bus-transport/bus-transport.strategy.js';
import { createGatewayTokenVerifier, gatewayTls, openDevIssuer } from './gateway-identity.js';
import { HttpListeners } from './http/http-listeners.js';
import { Listener } from './http/listener.js';
import { PORTCULLIS_VERSION, startProcessTracing } from './observability.js';
import { ObservabilityController } from './observability.controller.js';
import { connectProcessBus, type ProcessBus } from './process-bus.js';
import { ReadinessHealth } from './readiness-health.js';
import type { Role } from './roles.js';
import {
  CLOCK,
  CONFIG,
  DEV_ISSUER,
  EMBEDDED_AUDIT_STORE,
  EVENT_LOG,
  EVIDENCE_READS,
  GATEWAY_TLS,
  KV_STORES,
  LOGGER,
  MESSAGE_BUS,
  METRICS,
  NATS_CONNECTION,
  PROCESS_BUS,
  READINESS,
  TOKEN_VERIFIER,
  type Clock,
  type KvStores,
} from './tokens.js';

/** Tracing, started before the bus connects and shut down last. */
const TRACING = Symbol('portcullis.tracing');

/** What the process's shared pieces are built from. */
export interface CoreOptions {
  readonly config: PortcullisConfig;
  /** The roles this process runs, joined (`edge`, `policy+approval`, `embedded`): logs, metrics, the NATS connection name. */
  readonly label: string;
  /** The roles this process runs: which NATS inboxes and streams it uses. */
  readonly roles: readonly Role[];
  readonly logger: Logger;
  /** Whether a role here verifies tokens or listens on HTTPS (edge, approval, audit): the identity providers are built only then. */
  readonly identity: boolean;
  /** Providers replacing the defaults of the same token (tests inject in-process ports this way). */
  readonly overrides?: readonly Provider[];
}

/** Closes what the process opened, after every role stopped and the transport drained. */
@Injectable()
class CoreLifecycle implements OnApplicationShutdown {
  constructor(
    @Inject(PROCESS_BUS) private readonly bus: ProcessBus,
    @Inject(TRACING) private readonly tracing: Tracing | undefined,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await this.bus.close();
    await this.tracing?.shutdown();
  }
}

/** The observability listener, when `observability.listen` is set. */
@Injectable()
class ObservabilityListener {
  constructor(@Inject(HttpListeners) listeners: HttpListeners, @Inject(CONFIG) config: PortcullisConfig) {
    const listen = config.observability.listen;
    if (listen !== undefined) listeners.serve({ listener: Listener.Observability, description: 'observability', host: listen.host, port: listen.port });
  }
}

/**
 * Every port of one process, each built once and injected by its narrow token (see tokens.ts):
 * config, logger, clock, the bus connection (NATS, or in-process + SQLite, by `bus.mode`) and what
 * is read from it, metrics and readiness, and — when a role needs them — the one token verifier
 * (one JWKS key cache), the development issuer and the TLS material. Also the HTTP listeners over
 * the one Nest HTTP adapter and the bus transport of `@nestjs/microservices`.
 */
@Module({})
export class CoreModule {
  static forRoot(options: CoreOptions): DynamicModule {
    const { config, label, roles, logger } = options;
    const defaults: Provider[] = [
      { provide: CONFIG, useValue: config },
      { provide: LOGGER, useValue: logger },
      { provide: CLOCK, useValue: (() => Date.now()) satisfies Clock },
      { provide: TRACING, useFactory: () => startProcessTracing(config, label) },
      {
        provide: PROCESS_BUS,
        inject: [TRACING],
        useFactory: () => connectProcessBus(config, label, roles, logger),
      },
      { provide: MESSAGE_BUS, inject: [PROCESS_BUS], useFactory: (bus: ProcessBus) => bus.handle.bus },
      { provide: EVENT_LOG, inject: [PROCESS_BUS], useFactory: (bus: ProcessBus) => bus.log },
      {
        provide: EVIDENCE_READS,
        inject: [EVENT_LOG],
        useFactory: (log: EventLog) => new EvidenceReadRecorder(log, config.node.id, config.edge.auditAckTimeout),
      },
      { provide: KV_STORES, inject: [PROCESS_BUS], useFactory: (bus: ProcessBus): KvStores => ({ bucket: (name) => bus.handle.kv(name) }) },
      { provide: NATS_CONNECTION, inject: [PROCESS_BUS], useFactory: (bus: ProcessBus) => bus.nats },
      { provide: EMBEDDED_AUDIT_STORE, inject: [PROCESS_BUS], useFactory: (bus: ProcessBus) => bus.embeddedAuditStore },
      { provide: METRICS, useFactory: () => createPortcullisMetrics({ role: label, version: PORTCULLIS_VERSION }) },
      { provide: READINESS, inject: [PROCESS_BUS], useFactory: (bus: ProcessBus) => processReadiness(bus) },
      {
        provide: BusTransportStrategy,
        inject: [MESSAGE_BUS, PROCESS_BUS, BusServeGate],
        useFactory: (bus: MessageBus, processBus: ProcessBus, gate: BusServeGate) =>
          new BusTransportStrategy({ bus, flush: () => processBus.handle.flush(), gate, logger }),
      },
      BusServeGate,
      HttpListeners,
      ReadinessHealth,
      CoreLifecycle,
      ...(config.observability.listen !== undefined ? [ObservabilityListener] : []),
      ...(options.identity ? identityProviders(config) : []),
    ];
    const overridden = new Set((options.overrides ?? []).map(tokenOf));
    const providers = [...defaults.filter((p) => !overridden.has(tokenOf(p))), ...(options.overrides ?? [])];
    const exported = providers.map(tokenOf).filter((t) => t !== TRACING && t !== CoreLifecycle && t !== ObservabilityListener);
    return {
      module: CoreModule,
      global: true,
      imports: [TerminusModule.forRoot({ logger: false })],
      controllers: config.observability.listen !== undefined ? [ObservabilityController] : [],
      providers,
      exports: exported,
    };
  }
}

/** The token verifier, the development issuer and the TLS material: one of each per process. */
function identityProviders(config: PortcullisConfig): Provider[] {
  return [
    { provide: GATEWAY_TLS, useFactory: () => gatewayTls(config) },
    { provide: DEV_ISSUER, useFactory: () => openDevIssuer(config) },
    { provide: TOKEN_VERIFIER, inject: [DEV_ISSUER], useFactory: (dev: DevIssuer | undefined) => createGatewayTokenVerifier(config, dev) },
  ];
}

/** Readiness of any process: the bus connected and, in cluster mode, the audit stream present. Roles add theirs. */
function processReadiness(bus: ProcessBus): Readiness {
  const readiness = new Readiness();
  readiness.add({ name: 'bus', check: () => bus.handle.bus.isConnected() });
  const nc = bus.nats;
  if (nc !== undefined) {
    let jsm: JetStreamManager | undefined;
    readiness.add({
      name: 'jetstream',
      check: async () => {
        jsm ??= await jetstreamManager(nc);
        await jsm.streams.info(Streams.audit.name);
        return true;
      },
    });
  }
  return readiness;
}

function tokenOf(provider: Provider): InjectionToken {
  return typeof provider === 'function' ? provider : provider.provide;
}
