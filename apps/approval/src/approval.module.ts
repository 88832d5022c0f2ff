import { Module } from '@nestjs/common';
import { ApprovalRoleService } from './approval.service.js';

/** The approval role. */
@Module({ providers: [ApprovalRoleService], exports: [ApprovalRoleService] })
export class ApprovalModule {}
