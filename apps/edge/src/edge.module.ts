import { Module, type DynamicModule } from '@nestjs/common';
import type { UpstreamConnection } from '@portcullis/gateway';
import { EdgeService, EXTRA_CONNECTIONS } from './edge.service.js';

/** The edge role. */
@Module({})
export class EdgeModule {
  static forRoot(extraConnections: readonly UpstreamConnection[] = []): DynamicModule {
    return {
      module: EdgeModule,
      providers: [EdgeService, { provide: EXTRA_CONNECTIONS, useValue: extraConnections }],
      exports: [EdgeService],
    };
  }
}
