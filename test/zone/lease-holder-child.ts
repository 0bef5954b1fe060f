// The process test/zone/redis-coordinator.test.ts starts and kills: a replica that claims
// one fill lease (argv: Redis URL, peer URL, digest, lease TTL ms), says "held" on stdout
// and keeps renewing it until it is killed, as a replica dying mid-fill would.
import { createLogger } from '../../src/log/logger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { RedisCoordinator } from '../../src/zone/redis.js';

const [url = '', peerUrl = '', digest = '', ttl = '1000'] = process.argv.slice(2);
const zone = new RedisCoordinator({ url, prefix: 'test:', timeoutMs: 500, leaseTtlMs: Number(ttl), warnIntervalMs: 60_000, reconnectMaxMs: 200, peerUrl }, new Metrics(), createLogger({ level: 'silent', sync: true }));
if (!(await zone.ready(5_000))) throw new Error('redis not ready');
const claim = await zone.claimFill(digest);
process.stdout.write(claim.kind === 'lease' ? 'held\n' : `peer ${claim.peer}\n`);
