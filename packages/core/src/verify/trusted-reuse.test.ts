/**
 * TrustedRepository `reuse`: files byte-identical to an earlier object's (under
 * the same root) are taken over parsed and verified; anything else is parsed
 * and verified as without it, so reuse never makes a bad file acceptable.
 */
import { describe, expect, it } from 'vitest';
import { RollbackError, SignatureError } from '../errors.js';
import type { Dialect } from '../crypto/keys.js';
import { TestRepo, edSigner, imageTarget, tamper } from '../testing/builders.js';
import { refreshRepository, updateRootChain } from './uptane.js';

for (const dialect of ['uptane', 'tuf'] as Dialect[]) {
  describe(`TrustedRepository reuse (${dialect})`, () => {
    async function repoWithTargets(): Promise<TestRepo> {
      const repo = await TestRepo.create({ dialect });
      repo.addTarget(imageTarget('a.bin', 'a', ['hw']));
      await repo.publish();
      return repo;
    }

    it('takes over the parsed root and baselines of identical bytes, and the next cycle behaves the same', async () => {
      const repo = await repoWithTargets();
      const first = repo.trusted(repo.provisioned());
      await refreshRepository(first, repo.source());
      const stored = first.state();
      const again = repo.trusted(stored, { reuse: first });
      expect(again.root).toBe(first.root);
      expect(again.timestamp).toBe(first.timestamp);
      // Same as a fresh object over the same files: nothing new, the stored snapshot and targets are current.
      repo.requests.length = 0;
      const t = await refreshRepository(again, repo.source());
      expect(repo.requests).toEqual(['root 2', 'timestamp']);
      expect(t.signed.targets.has('a.bin')).toBe(true);
      // Fresh bytes (new copies with the same content) are compared, not identity.
      const copy = { ...stored, root: Buffer.from(stored.root), timestamp: Buffer.from(stored.timestamp as Uint8Array) };
      expect(repo.trusted(copy, { reuse: again }).root).toBe(first.root);
    });

    it('parses and verifies anything that differs by a byte, so a bad stored file is dropped as without reuse', async () => {
      const repo = await repoWithTargets();
      const first = repo.trusted(repo.provisioned());
      await refreshRepository(first, repo.source());
      const stored = first.state();
      const badTimestamp = tamper(stored.timestamp as Uint8Array, (d) => {
        d.signed['version'] = 99;
      });
      const withBad = repo.trusted({ ...stored, timestamp: badTimestamp }, { reuse: first });
      expect(withBad.timestamp).toBeUndefined();
      // A damaged root is refused even though the earlier object had a good one.
      const badRoot = tamper(stored.root, (d) => {
        d.signed['expires'] = '2099-01-01T00:00:00Z';
      });
      expect(() => repo.trusted({ ...stored, root: badRoot }, { reuse: first })).toThrow(SignatureError);
    });

    it('keeps rollback protection: the reused baseline still refuses an older timestamp', async () => {
      const repo = await repoWithTargets();
      const oldTimestamp = repo.files.timestamp as Uint8Array;
      await repo.publish();
      const first = repo.trusted(repo.provisioned());
      await refreshRepository(first, repo.source());
      const again = repo.trusted(first.state(), { reuse: first });
      expect(() => again.updateTimestamp(oldTimestamp)).toThrow(RollbackError);
    });

    it('does not take baselines from an object left between a root rotation and its checks (R-4)', async () => {
      const repo = await repoWithTargets();
      const first = repo.trusted(repo.provisioned());
      await refreshRepository(first, repo.source());
      const stored = first.state();
      // Root 2 changes the timestamp key; the stored timestamp must stop being a baseline under it.
      await repo.rotateRoot({ keys: { timestamp: [edSigner('new-timestamp', dialect)] } });
      const midway = repo.trusted(stored);
      midway.updateRoot(repo.roots[1] as Uint8Array);
      // The cycle stopped here (e.g. a network error fetching 3.root.json); the client stored root 2 at once.
      const next = repo.trusted({ ...stored, root: repo.roots[1] as Uint8Array }, { reuse: midway });
      expect(next.rootVersion).toBe(2);
      expect(next.timestamp).toBeUndefined();
      // After the rotation was finished, its objects are reusable again.
      const finished = repo.trusted({ ...stored, root: repo.roots[1] as Uint8Array });
      await updateRootChain(finished, repo.source());
      expect(repo.trusted(finished.state(), { reuse: finished }).root).toBe(finished.root);
    });
  });
}
