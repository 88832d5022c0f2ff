import { Module, type DynamicModule } from '@nestjs/common';
import type { UpstreamConnection } from '@portcullis/gateway';
import { DevIssuerController } from './dev-issuer.controller.js';
import { EdgeListenerController } from './edge-listener.controller.js';
import { edgeProviders } from './edge.providers.js';
import { EdgeService } from './edge.service.js';
import { PolicyExplainController, PolicyExplainer } from './policy-explain.controller.js';

/** What the edge role is composed with. */
export interface EdgeModuleOptions {
  /** Serve the development issuer (`identity.devIssuer.enabled`). */
  readonly devIssuer: boolean;
  /** Connections the process adds (the embedded sandbox). */
  readonly extraConnections?: readonly UpstreamConnection[];
}

/** The edge role: the plain-Node data path, and its admin routes as Nest controllers on the edge listener. */
@Module({})
export class EdgeModule {
  static forRoot(options: EdgeModuleOptions): DynamicModule {
    return {
      module: EdgeModule,
      controllers: [PolicyExplainController, ...(options.devIssuer ? [DevIssuerController] : []), EdgeListenerController],
      providers: [...edgeProviders(options.extraConnections ?? []), PolicyExplainer, EdgeService],
      exports: [EdgeService],
    };
  }
}
