import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { clientAddress, parseTrustedProxies } from '../../src/http/client-address.js';
import { normalizeIp } from '../../src/net/ip.js';

const trusted = parseTrustedProxies(['10.0.0.0/8', '192.168.1.7', 'fd00::/8', '::1']);

describe('normalizeIp', () => {
  test('canonical forms', () => {
    assert.equal(normalizeIp('::ffff:1.2.3.4'), '1.2.3.4');
    assert.equal(normalizeIp('::FFFF:0102:0304'), '1.2.3.4');
    assert.equal(normalizeIp(' 1.2.3.4 '), '1.2.3.4');
    assert.equal(normalizeIp('2001:0DB8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
    assert.equal(normalizeIp('2001:db8:0:1:0:0:0:1'), '2001:db8:0:1::1');
    assert.equal(normalizeIp('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1');
    assert.equal(normalizeIp('[fe80::1%eth0]'), 'fe80::1');
    assert.equal(normalizeIp('::'), '::');
    assert.equal(normalizeIp('::1'), '::1');
  });

  test('not addresses', () => {
    for (const bad of ['', 'x', '1.2.3', '1.2.3.256', '01.2.3.4', '1.2.3.4.5', '1:2:3:4:5:6:7:8:9', '1::2::3', ':::', 'unknown', '12345::']) {
      assert.equal(normalizeIp(bad), undefined, bad);
    }
  });
});

describe('parseTrustedProxies', () => {
  test('IPs and CIDRs, v4 and v6', () => {
    assert.equal(trusted.has('10.200.3.4'), true);
    assert.equal(trusted.has('11.0.0.1'), false);
    assert.equal(trusted.has('192.168.1.7'), true);
    assert.equal(trusted.has('192.168.1.8'), false);
    assert.equal(trusted.has('fd12:3456::1'), true);
    assert.equal(trusted.has('fe80::1'), false);
    assert.equal(trusted.has('::1'), true);
    assert.equal(trusted.has('::ffff:10.1.1.1'), true);
    assert.equal(trusted.has('garbage'), false);
  });

  test('IPv4-mapped entries become IPv4 rules', () => {
    const t = parseTrustedProxies(['::ffff:172.16.0.0/108']);
    assert.equal(t.has('172.16.9.9'), true);
    assert.equal(t.has('172.32.0.1'), false);
  });

  test('an empty list trusts nobody', () => {
    assert.equal(parseTrustedProxies([]).has('127.0.0.1'), false);
  });

  test('invalid entries throw naming the entry', () => {
    for (const bad of ['10.0.0.0/33', 'example.com', '10.0.0/8', 'fd00::/129', '10.0.0.0/', '10.0.0.0/x', '']) {
      assert.throws(() => parseTrustedProxies(['127.0.0.1', bad]), (err: unknown) => {
        assert.ok(err instanceof Error);
        assert.ok(err.message.includes(JSON.stringify(bad)), err.message);
        return true;
      });
    }
  });
});

describe('clientAddress', () => {
  test('untrusted peer: the socket address, whatever the headers say', () => {
    assert.equal(clientAddress('203.0.113.9', { 'x-forwarded-for': '1.1.1.1', 'x-real-ip': '2.2.2.2' }, trusted), '203.0.113.9');
    assert.equal(clientAddress('::ffff:203.0.113.9', {}, trusted), '203.0.113.9');
  });

  test('trusted peer without headers: the socket address', () => {
    assert.equal(clientAddress('10.0.0.1', {}, trusted), '10.0.0.1');
  });

  test('trusted peer: the rightmost untrusted X-Forwarded-For entry', () => {
    assert.equal(clientAddress('10.0.0.1', { 'x-forwarded-for': '6.6.6.6, 198.51.100.4' }, trusted), '198.51.100.4');
    assert.equal(clientAddress('::ffff:10.0.0.1', { 'x-forwarded-for': '198.51.100.4' }, trusted), '198.51.100.4');
  });

  test('a chain of trusted proxies is walked from the right', () => {
    const xff = '6.6.6.6, 198.51.100.4, 192.168.1.7, 10.1.1.1';
    assert.equal(clientAddress('10.0.0.1', { 'x-forwarded-for': xff }, trusted), '198.51.100.4');
    // Repeated headers, as a list.
    assert.equal(clientAddress('10.0.0.1', { 'x-forwarded-for': ['6.6.6.6, 198.51.100.4', '10.1.1.1'] }, trusted), '198.51.100.4');
    // Every entry trusted: the leftmost.
    assert.equal(clientAddress('10.0.0.1', { 'x-forwarded-for': '10.3.3.3, 10.2.2.2' }, trusted), '10.3.3.3');
  });

  test('IPv6 and ported entries', () => {
    assert.equal(clientAddress('::1', { 'x-forwarded-for': '2001:DB8::7, fd00::5' }, trusted), '2001:db8::7');
    assert.equal(clientAddress('::1', { 'x-forwarded-for': '[2001:db8::7]:4711' }, trusted), '2001:db8::7');
    assert.equal(clientAddress('10.0.0.1', { 'x-forwarded-for': '198.51.100.4:5555' }, trusted), '198.51.100.4');
    assert.equal(clientAddress('10.0.0.1', { 'x-forwarded-for': '::ffff:198.51.100.4' }, trusted), '198.51.100.4');
  });

  test('X-Real-IP when there is no X-Forwarded-For', () => {
    assert.equal(clientAddress('10.0.0.1', { 'x-real-ip': '198.51.100.9' }, trusted), '198.51.100.9');
    assert.equal(clientAddress('10.0.0.1', { 'x-real-ip': ['1.1.1.1', '198.51.100.9'] }, trusted), '198.51.100.9');
    assert.equal(clientAddress('10.0.0.1', { 'x-forwarded-for': '198.51.100.4', 'x-real-ip': '198.51.100.9' }, trusted), '198.51.100.4');
  });

  test('garbage headers fall back without throwing', () => {
    assert.equal(clientAddress('10.0.0.1', { 'x-forwarded-for': 'unknown' }, trusted), '10.0.0.1');
    assert.equal(clientAddress('10.0.0.1', { 'x-forwarded-for': ',,, ,' }, trusted), '10.0.0.1');
    assert.equal(clientAddress('10.0.0.1', { 'x-forwarded-for': '<script>', 'x-real-ip': '198.51.100.9' }, trusted), '198.51.100.9');
    assert.equal(clientAddress('10.0.0.1', { 'x-real-ip': '999.1.1.1' }, trusted), '10.0.0.1');
    // Garbage further left stops the walk at the last proxy that passed it on.
    assert.equal(clientAddress('10.0.0.1', { 'x-forwarded-for': 'evil, 10.5.5.5' }, trusted), '10.5.5.5');
    assert.equal(clientAddress('10.0.0.1', { 'x-forwarded-for': '1.2.3.4'.repeat(10_000) }, trusted), '10.0.0.1');
    assert.equal(clientAddress('10.0.0.1', { 'x-forwarded-for': `${'10.0.0.2, '.repeat(5_000)}198.51.100.4` }, trusted), '198.51.100.4');
    assert.equal(clientAddress('10.0.0.1', { 'x-forwarded-for': [] }, trusted), '10.0.0.1');
    assert.equal(clientAddress(undefined, { 'x-forwarded-for': '1.1.1.1' }, trusted), '');
    assert.equal(clientAddress('weird', { 'x-forwarded-for': '1.1.1.1' }, trusted), 'weird');
  });
});
