import { Module, type DynamicModule } from '@nestjs/common';
import { CONFIG, EVENT_LOG, LOGGER, MESSAGE_BUS, PLATFORM } from './tokens.js';
import type { Platform } from './platform.js';

/** Makes one process's platform (config, logger, bus, event log) injectable everywhere. */
@Module({})
export class PlatformModule {
  static forRoot(platform: Platform): DynamicModule {
    return {
      module: PlatformModule,
      global: true,
      providers: [
        { provide: PLATFORM, useValue: platform },
        { provide: CONFIG, useValue: platform.config },
        { provide: LOGGER, useValue: platform.logger },
        { provide: MESSAGE_BUS, useValue: platform.bus },
        { provide: EVENT_LOG, useValue: platform.log },
      ],
      exports: [PLATFORM, CONFIG, LOGGER, MESSAGE_BUS, EVENT_LOG],
    };
  }
}
