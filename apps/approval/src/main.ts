/** The approval role as its own Nest application: `node dist/apps/approval/src/main.js --config FILE`. */
import { runRoleMain } from '../../runtime/src/role-main.js';
import { Role } from '../../runtime/src/roles.js';

await runRoleMain([Role.Approval]);
