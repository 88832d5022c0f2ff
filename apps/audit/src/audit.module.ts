import { Module } from '@nestjs/common';
import { AuditService } from './audit.service.js';

/** The audit role. */
@Module({ providers: [AuditService] })
export class AuditModule {}
