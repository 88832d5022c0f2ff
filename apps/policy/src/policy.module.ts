import { Module } from '@nestjs/common';
import { PolicyController } from './policy.controller.js';
import { PolicyService } from './policy.service.js';

/** The policy role: the policy in force and its bus handlers. */
@Module({ controllers: [PolicyController], providers: [PolicyService], exports: [PolicyService] })
export class PolicyModule {}
