/**
 * Group commit: work items that arrive while a batch is being written wait and are written together in
 * the next one, so a busy instance pays one transaction (BEGIN, one lock, one update, COMMIT) for many
 * items instead of one each. An idle instance writes an item on the next turn of the event loop: no timer.
 *
 * Items carry a key (a device): a batch never holds two items of one key, and an item waits while a batch
 * holding its key is in flight, so items of one key are written in arrival order, each seeing the last.
 */

export interface GroupCommitOptions<T> {
  /** Writes a batch; answers, per item and in order, undefined (done) or the error that item is refused with. */
  readonly write: (batch: readonly T[]) => Promise<ReadonlyArray<Error | undefined>>;
  readonly keyOf: (item: T) => string;
  /** Batches in flight at once (PostgreSQL can use several connections; SQLite serializes anyway). */
  readonly concurrency: number;
  readonly maxBatch: number;
}

interface Pending<T> {
  readonly item: T;
  readonly key: string;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

export class GroupCommit<T> {
  private readonly queue: Array<Pending<T>> = [];
  private readonly busyKeys = new Set<string>();
  private inFlight = 0;
  private scheduled = false;

  constructor(private readonly options: GroupCommitOptions<T>) {}

  /** Resolves once the item is committed; rejects with its refusal, or with the batch's error. */
  submit(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ item, key: this.options.keyOf(item), resolve, reject });
      // Taken on the next turn of the event loop, not now: items whose checks finish in this turn join the batch.
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.pump();
        });
      }
    });
  }

  private pump(): void {
    while (this.inFlight < this.options.concurrency && this.queue.length > 0) {
      const batch = this.take();
      if (batch.length === 0) return;
      this.inFlight++;
      void this.run(batch).finally(() => {
        this.inFlight--;
        for (const p of batch) this.busyKeys.delete(p.key);
        this.pump();
      });
    }
  }

  /** The oldest items whose keys are free, one per key, up to maxBatch; the others keep their place. */
  private take(): Array<Pending<T>> {
    const batch: Array<Pending<T>> = [];
    const keys = new Set<string>();
    let i = 0;
    while (i < this.queue.length && batch.length < this.options.maxBatch) {
      const p = this.queue[i] as Pending<T>;
      if (this.busyKeys.has(p.key) || keys.has(p.key)) {
        i++;
        continue;
      }
      keys.add(p.key);
      batch.push(p);
      this.queue.splice(i, 1);
    }
    for (const k of keys) this.busyKeys.add(k);
    return batch;
  }

  private async run(batch: ReadonlyArray<Pending<T>>): Promise<void> {
    try {
      const results = await this.options.write(batch.map((p) => p.item));
      batch.forEach((p, i) => {
        const err = results[i];
        if (err) p.reject(err);
        else p.resolve();
      });
    } catch (err) {
      if (batch.length === 1) {
        (batch[0] as Pending<T>).reject(err);
        return;
      }
      // The whole batch rolled back (a database error, or one item's unexpected failure): write each item
      // alone, so one bad item cannot fail the others.
      for (const p of batch) {
        try {
          const [one] = await this.options.write([p.item]);
          if (one) p.reject(one);
          else p.resolve();
        } catch (e) {
          p.reject(e);
        }
      }
    }
  }
}
