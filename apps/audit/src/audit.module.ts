import { Module, type DynamicModule } from '@nestjs/common';
import { auditProviders } from './audit.providers.js';
import { AuditListener, AuditListenerController, AuditReplayController } from './audit-replay.controller.js';
import { AuditService } from './audit.service.js';

/** The audit role: the writer into the audit store, retention, and (with `audit.listen`) the replay API on its own listener. */
@Module({})
export class AuditModule {
  static forRoot(options: { replayApi: boolean }): DynamicModule {
    return {
      module: AuditModule,
      controllers: options.replayApi ? [AuditReplayController, AuditListenerController] : [],
      providers: [...auditProviders, AuditService, ...(options.replayApi ? [AuditListener] : [])],
    };
  }
}
