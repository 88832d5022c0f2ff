import { Module } from '@nestjs/common';
import { ApprovalService } from './approval.service.js';

/** The approval role. */
@Module({ providers: [ApprovalService] })
export class ApprovalModule {}
