/** The approval service over the Redis projection (real redis-server, a key prefix per run). */
import { after } from 'node:test';
import { Redis } from 'ioredis';
import { RedisApprovalStore, type ApprovalStore } from '@portcullis/approval';
import { sharedRedisUrl, uniqueName } from '../harness/services.js';
import { describeApprovalConformance, type FakeClock } from '../support/approval-conformance.js';

const url = await sharedRedisUrl();
const admin = new Redis(url);
const prefixes = new Map<ApprovalStore, string>();

after(async () => {
  for (const prefix of prefixes.values()) {
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length > 0) await admin.del(...keys);
  }
  await admin.quit();
});

describeApprovalConformance({
  name: 'the Redis store',
  open: (clock: FakeClock) => {
    const prefix = `${uniqueName('appr')}:`;
    const store = new RedisApprovalStore(new Redis(url), { keyPrefix: prefix, now: clock.now });
    prefixes.set(store, prefix);
    return Promise.resolve(store);
  },
  // A flush of this store's key space (the shared server serves other test files too).
  wipe: async (store: ApprovalStore) => {
    const keys = await admin.keys(`${prefixes.get(store)!}*`);
    if (keys.length > 0) await admin.del(...keys);
  },
});
