import { describe, expect, it } from 'vitest';
import { GroupCommit } from './group-commit.js';

interface Item {
  readonly key: string;
  readonly n: number;
}

/** A writer that records its batches and holds each until released. */
function recordingWriter(refuse: (i: Item) => Error | undefined = () => undefined, fail: (batch: readonly Item[]) => boolean = () => false) {
  const batches: Item[][] = [];
  const gates: Array<() => void> = [];
  const write = async (batch: readonly Item[]): Promise<Array<Error | undefined>> => {
    batches.push([...batch]);
    await new Promise<void>((resolve) => gates.push(resolve));
    if (fail(batch)) throw new Error('database is down');
    return batch.map(refuse);
  };
  const releaseAll = async () => {
    for (let i = 0; i < 50 && (gates.length > 0 || i < 3); i++) {
      gates.splice(0).forEach((g) => g());
      await new Promise((r) => setImmediate(r));
    }
  };
  return { batches, write, releaseAll };
}

describe('GroupCommit', () => {
  it('writes what is submitted in one turn together, and gathers what arrives meanwhile into the next batch', async () => {
    const w = recordingWriter();
    const gc = new GroupCommit<Item>({ write: w.write, keyOf: (i) => i.key, concurrency: 1, maxBatch: 64 });
    const done = [gc.submit({ key: 'a', n: 1 }), gc.submit({ key: 'b', n: 1 })];
    await new Promise((r) => setImmediate(r));
    expect(w.batches).toEqual([
      [
        { key: 'a', n: 1 },
        { key: 'b', n: 1 },
      ],
    ]);
    done.push(gc.submit({ key: 'c', n: 1 }), gc.submit({ key: 'd', n: 1 }));
    await new Promise((r) => setImmediate(r));
    // The first batch is still in flight: nothing else is written yet.
    expect(w.batches).toHaveLength(1);
    await w.releaseAll();
    await Promise.all(done);
    expect(w.batches[1]).toEqual([
      { key: 'c', n: 1 },
      { key: 'd', n: 1 },
    ]);
  });

  it('never puts two items of one key in a batch, and keeps their order', async () => {
    const w = recordingWriter();
    const gc = new GroupCommit<Item>({ write: w.write, keyOf: (i) => i.key, concurrency: 1, maxBatch: 64 });
    const done = [gc.submit({ key: 'x', n: 0 }), ...[1, 2, 3].map((n) => gc.submit({ key: 'a', n })), gc.submit({ key: 'b', n: 1 })];
    await w.releaseAll();
    await Promise.all(done);
    for (const b of w.batches) expect(new Set(b.map((i) => i.key)).size).toBe(b.length);
    expect(
      w.batches
        .flat()
        .filter((i) => i.key === 'a')
        .map((i) => i.n),
    ).toEqual([1, 2, 3]);
  });

  it('holds an item whose key is in a batch in flight, with concurrency above one', async () => {
    const w = recordingWriter();
    const gc = new GroupCommit<Item>({ write: w.write, keyOf: (i) => i.key, concurrency: 2, maxBatch: 64 });
    const done = [gc.submit({ key: 'a', n: 1 })];
    await new Promise((r) => setImmediate(r));
    done.push(gc.submit({ key: 'a', n: 2 }), gc.submit({ key: 'b', n: 1 }));
    await new Promise((r) => setImmediate(r));
    // 'b' went out beside the first batch; the second 'a' waits for the first to end.
    expect(w.batches).toEqual([[{ key: 'a', n: 1 }], [{ key: 'b', n: 1 }]]);
    await w.releaseAll();
    await Promise.all(done);
    expect(w.batches[2]).toEqual([{ key: 'a', n: 2 }]);
  });

  it('caps a batch at maxBatch', async () => {
    const w = recordingWriter();
    const gc = new GroupCommit<Item>({ write: w.write, keyOf: (i) => i.key, concurrency: 1, maxBatch: 3 });
    const done = Array.from({ length: 8 }, (_, n) => gc.submit({ key: `k${n}`, n }));
    await w.releaseAll();
    await Promise.all(done);
    expect(w.batches.map((b) => b.length)).toEqual([3, 3, 2]);
  });

  it('rejects only the refused items of a batch', async () => {
    const w = recordingWriter((i) => (i.n === 2 ? new Error('refused 2') : undefined));
    const gc = new GroupCommit<Item>({ write: w.write, keyOf: (i) => i.key, concurrency: 1, maxBatch: 64 });
    const results = [1, 2, 3].map((n) =>
      gc.submit({ key: `k${n}`, n }).then(
        () => 'ok',
        (e: Error) => e.message,
      ),
    );
    await w.releaseAll();
    expect(await Promise.all(results)).toEqual(['ok', 'refused 2', 'ok']);
  });

  it('when a whole batch fails, writes each item alone so one bad item does not fail the others', async () => {
    // Any batch holding item 2 fails (as if it broke the transaction).
    const w = recordingWriter(undefined, (batch) => batch.some((i) => i.n === 2));
    const gc = new GroupCommit<Item>({ write: w.write, keyOf: (i) => i.key, concurrency: 1, maxBatch: 64 });
    const first = gc.submit({ key: 'k0', n: 0 });
    await new Promise((r) => setImmediate(r));
    const results = [1, 2, 3].map((n) =>
      gc.submit({ key: `k${n}`, n }).then(
        () => 'ok',
        (e: Error) => e.message,
      ),
    );
    await w.releaseAll();
    await first;
    expect(await Promise.all(results)).toEqual(['ok', 'database is down', 'ok']);
    expect(w.batches.map((b) => b.map((i) => i.n))).toEqual([[0], [1, 2, 3], [1], [2], [3]]);
  });
});
