/** The audit role as its own Nest application: `node dist/apps/audit/src/main.js --config FILE`. */
import { runRoleMain } from '../../runtime/src/role-main.js';
import { Role } from '../../runtime/src/roles.js';

await runRoleMain([Role.Audit]);
