import { Module } from '@nestjs/common';
import { PolicyService } from './policy.service.js';

/** The policy role. */
@Module({ providers: [PolicyService], exports: [PolicyService] })
export class PolicyModule {}
