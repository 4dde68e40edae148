// The retry wrapper: transient failures are retried with bounded, jittered exponential backoff and then
// succeed; permanent failures and "not found" are not retried; attempts are bounded; one-shot streams are
// never replayed.
import t from 'tap';
import {
  backoffDelay,
  NotFoundError,
  PermanentError,
  RetryingBackend,
  TransientError,
  withRetry,
  type Backend,
  type Body,
  type ObjectInfo,
  type RetryPolicy,
} from '../../daemon/remote/backend.js';
import { errorOf } from '../helpers/errors.js';

function policy(attempts: number, delays: number[], random = 0.5): RetryPolicy {
  return {
    attempts,
    baseDelayMs: 100,
    maxDelayMs: 1000,
    random: () => random,
    sleep: async (ms) => {
      delays.push(ms);
    },
  };
}


t.test('transient failures are retried, then succeed', async (t) => {
  const delays: number[] = [];
  const retries: number[] = [];
  let calls = 0;
  const p = { ...policy(5, delays), onRetry: (i: { attempt: number }) => retries.push(i.attempt) };
  const v = await withRetry(
    'op',
    async (attempt) => {
      calls++;
      t.equal(attempt, calls, 'attempt number passed in');
      if (calls < 3) throw new TransientError('503 ServiceUnavailable', { status: 503 });
      return 'ok';
    },
    p,
  );
  t.equal(v, 'ok');
  t.equal(calls, 3);
  t.same(retries, [1, 2]);
  t.same(delays, [75, 150], 'exponential: base/2 + jitter, doubling');
});

t.test('permanent failures and not-found are not retried', async (t) => {
  for (const err of [new PermanentError('403 AccessDenied'), new NotFoundError('no such object'), new TypeError('a bug')]) {
    const delays: number[] = [];
    let calls = 0;
    const e = await errorOf(
      withRetry(
        'op',
        async () => {
          calls++;
          throw err;
        },
        policy(5, delays),
      ),
    );
    t.equal(e, err, `${err.name} rethrown as is`);
    t.equal(calls, 1, `${err.name}: one attempt`);
    t.same(delays, []);
  }
});

t.test('attempts are bounded', async (t) => {
  const delays: number[] = [];
  let calls = 0;
  const e = await errorOf(
    withRetry(
      'op',
      async () => {
        calls++;
        throw new TransientError('ECONNRESET', { key: 'data/ab/cd', status: 502 });
      },
      policy(4, delays, 1),
    ),
  );
  t.equal(calls, 4, 'exactly `attempts` calls');
  t.equal(delays.length, 3, 'a wait between attempts, none after the last');
  t.ok(e instanceof TransientError);
  t.match((e as TransientError).message, /ECONNRESET \(gave up after 4 attempts\)/);
  t.equal((e as TransientError).key, 'data/ab/cd', 'key kept');
  t.equal((e as TransientError).status, 502, 'status kept');
  t.ok((e as Error).cause instanceof TransientError, 'the last failure is the cause');
  t.equal((e as TransientError).exhausted, true, 'marked exhausted');

  // Nested loops do not multiply: an exhausted error passes through an outer loop untouched.
  let inner = 0;
  const outerDelays: number[] = [];
  const nested = await errorOf(
    withRetry(
      'outer',
      () =>
        withRetry(
          'inner',
          async () => {
            inner++;
            throw new TransientError('503');
          },
          policy(3, []),
        ),
      policy(5, outerDelays),
    ),
  );
  t.equal(inner, 3, 'inner attempts only');
  t.same(outerDelays, [], 'the outer loop did not retry');
  t.match((nested as Error).message, /^503 \(gave up after 3 attempts\)$/);

  let once = 0;
  const single = await errorOf(
    withRetry(
      'op',
      async () => {
        once++;
        throw new TransientError('timeout');
      },
      policy(1, []),
    ),
  );
  t.equal(once, 1);
  t.match((single as Error).message, /^timeout$/, 'attempts = 1: the error as is');
});

t.test('backoff delays: capped, jittered within [d/2, d]', async (t) => {
  const p: RetryPolicy = { attempts: 10, baseDelayMs: 200, maxDelayMs: 3000 };
  const ceilings = [200, 400, 800, 1600, 3000, 3000, 3000];
  for (const [i, c] of ceilings.entries()) {
    t.equal(backoffDelay(i + 1, { ...p, random: () => 0 }), c / 2, `retry ${i + 1}: low end`);
    t.equal(backoffDelay(i + 1, { ...p, random: () => 0.999999 }), Math.round(c / 2 + (c / 2) * 0.999999), `retry ${i + 1}: high end`);
  }
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(3, p);
    if (d < 400 || d > 800) t.fail(`delay ${d} out of [400, 800]`);
  }
  t.pass('random delays in range');
});

/** A backend whose operations fail with the queued errors first. */
class FlakyBackend implements Backend {
  readonly location = 'flaky://';
  readonly store = new Map<string, Buffer>();
  failures: Error[] = [];
  calls = 0;

  private maybeFail(): void {
    this.calls++;
    const e = this.failures.shift();
    if (e !== undefined) throw e;
  }

  async put(key: string, body: Body, size: number): Promise<void> {
    const parts: Buffer[] = [];
    if (body instanceof Uint8Array) parts.push(Buffer.from(body));
    else for await (const c of typeof body === 'function' ? body() : body) parts.push(Buffer.from(c));
    this.maybeFail();
    const data = Buffer.concat(parts);
    if (data.length !== size) throw new PermanentError('size');
    this.store.set(key, data);
  }

  putLarge(key: string, body: Body, size: number): Promise<void> {
    return this.put(key, body, size);
  }

  async get(key: string): Promise<Buffer> {
    this.maybeFail();
    const v = this.store.get(key);
    if (v === undefined) throw new NotFoundError(`no ${key}`, { key });
    return v;
  }

  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    return (await this.get(key)).subarray(offset, offset + length);
  }

  async head(key: string): Promise<number | null> {
    this.maybeFail();
    return this.store.get(key)?.length ?? null;
  }

  async *list(prefix: string): AsyncGenerator<ObjectInfo> {
    let n = 0;
    for (const [key, v] of this.store) {
      if (!key.startsWith(prefix)) continue;
      if (n++ === 1) this.maybeFail(); // fails midway through a listing
      yield { key, size: v.length };
    }
  }

  async delete(keys: readonly string[]): Promise<void> {
    this.maybeFail();
    for (const k of keys) this.store.delete(k);
  }

  async close(): Promise<void> {}
}

t.test('RetryingBackend', async (t) => {
  const inner = new FlakyBackend();
  const delays: number[] = [];
  const b = new RetryingBackend(inner, policy(3, delays));
  t.equal(b.location, 'flaky://');

  inner.failures = [new TransientError('reset'), new TransientError('503')];
  await b.put('k', Buffer.from('abc'), 3);
  t.same(inner.store.get('k'), Buffer.from('abc'), 'put succeeded on the third attempt');
  t.equal(delays.length, 2);

  let opened = 0;
  const factory = async function* (): AsyncGenerator<Uint8Array> {
    opened++;
    yield Buffer.from('streamed');
  };
  inner.failures = [new TransientError('reset')];
  await b.putLarge('s', factory, 8);
  t.equal(opened, 2, 'a stream factory is reopened for the retry');
  t.same(inner.store.get('s'), Buffer.from('streamed'));

  inner.failures = [new TransientError('reset')];
  const oneShot = (async function* () {
    yield Buffer.from('once');
  })();
  t.ok((await errorOf(b.put('o', oneShot, 4))) instanceof TransientError, 'a one-shot stream is not retried');
  t.equal(inner.store.has('o'), false);

  inner.failures = [new TransientError('a'), new TransientError('b'), new TransientError('c')];
  inner.calls = 0;
  const e = await errorOf(b.get('k'));
  t.match((e as Error).message, /gave up after 3 attempts/);
  t.equal(inner.calls, 3, 'bounded');

  inner.failures = [new PermanentError('denied')];
  inner.calls = 0;
  t.match(await errorOf(b.head('k')), { message: 'denied' });
  t.equal(inner.calls, 1, 'permanent: not retried');

  inner.calls = 0;
  t.ok((await errorOf(b.get('missing'))) instanceof NotFoundError);
  t.equal(inner.calls, 1, 'not found: not retried');

  inner.failures = [new TransientError('x')];
  t.same(await b.getRange('k', 1, 5), Buffer.from('bc'), 'getRange retried');

  await b.put('l/1', Buffer.from('1'), 1);
  await b.put('l/2', Buffer.from('2'), 1);
  await b.put('l/3', Buffer.from('3'), 1);
  inner.failures = [new TransientError('list broke')];
  const listed: string[] = [];
  for await (const o of b.list('l/')) listed.push(o.key);
  t.same(listed, ['l/1', 'l/2', 'l/3'], 'a listing that failed midway is restarted, without duplicates');

  inner.failures = [new TransientError('x')];
  await b.delete(['l/1']);
  t.equal(inner.store.has('l/1'), false, 'delete retried');
  await b.close();
});
