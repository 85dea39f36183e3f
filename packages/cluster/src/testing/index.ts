export { EtcdCluster, etcdSkipReason } from './etcd.js';
