export { defaultUiDir } from './assets.js';
export { cookieValue, SESSION_COOKIE, type Session, Sessions } from './auth.js';
export { loadOrCreateSecret } from './secret.js';
export {
  checkListenOptions,
  createDashboardServer,
  DASHBOARD_METHODS,
  DashboardError,
  type DashboardEvent,
  type DashboardOptions,
  type DashboardServer,
  isLoopback,
} from './server.js';
export { VERSION } from './version.js';
