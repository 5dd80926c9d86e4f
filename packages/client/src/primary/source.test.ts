import { describe, it, expect } from 'vitest';
import { TargetFile } from '@uptide/core';
import { imageUrl, percentEncode } from './source.js';

describe('image URLs', () => {
  it('percent-encodes target names as aktualizr (curl) does, keeping /', () => {
    expect(percentEncode('fw-1.0_rc~2.bin', true)).toBe('fw-1.0_rc~2.bin');
    expect(percentEncode('dir/a b+c!*(x).bin', true)).toBe('dir/a%20b%2Bc%21%2A%28x%29.bin');
    expect(percentEncode('ü', true)).toBe('%C3%BC');
    expect(percentEncode('team/role', false)).toBe('team%2Frole');
  });

  it("takes the Director's uri, else the Image repository's, else the targets path, ignoring aktualizr's placeholder", () => {
    const plain = new TargetFile('a b.bin', 1, { sha256: 'aa' }, { uri: null });
    const withUri = (uri: string) => new TargetFile('a b.bin', 1, { sha256: 'aa' }, { uri });
    expect(imageUrl('https://r/repo', 'a b.bin', plain, undefined)).toBe('https://r/repo/targets/a%20b.bin');
    expect(imageUrl('https://r/repo', 'a b.bin', withUri('https://cdn/d'), withUri('https://cdn/i'))).toBe('https://cdn/d');
    expect(imageUrl('https://r/repo', 'a b.bin', plain, withUri('https://cdn/i'))).toBe('https://cdn/i');
    expect(imageUrl('https://r/repo', 'a b.bin', withUri('https://example.com/'), plain)).toBe('https://r/repo/targets/a%20b.bin');
  });
});
