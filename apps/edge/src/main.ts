/** The edge role as its own Nest application: `node dist/apps/edge/src/main.js --config FILE`. */
import { runRoleMain } from '../../runtime/src/role-main.js';
import { Role } from '../../runtime/src/roles.js';

await runRoleMain([Role.Edge]);
