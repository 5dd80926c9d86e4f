/**
 * Signatures are first checked over the bytes of `signed` exactly as
 * received (repositories serve canonical JSON, so this spares re-serializing
 * a large payload), then over the canonical form. Both paths must accept
 * exactly what a valid key signed and nothing else.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { TargetFile } from './targets.js';
import { Targets, parseTargets } from './targets.js';
import { Metadata } from './base.js';
import { SignatureError } from '../errors.js';
import { canonicalize, parseJson, parseJsonWithMember } from '../json.js';
import { edSigner, imageTarget, LATER } from '../testing/builders.js';

const signer = edSigner('received-bytes', 'uptane');
const keys = new Map([[signer.publicKey.keyId('uptane'), signer.publicKey]]);
const role = { keyids: [signer.publicKey.keyId('uptane')], threshold: 1 };

async function signedTargets(): Promise<Metadata<Targets>> {
  const targets = new Map<string, TargetFile>([['a.bin', imageTarget('a.bin', 'hello', ['hw'])]]);
  return Metadata.create(new Targets({ version: 3, expires: LATER, targets }), 'uptane', [signer]);
}

describe('verification over the bytes received', () => {
  it('accepts canonical bytes as served', async () => {
    const md = await signedTargets();
    expect(parseTargets(md.toBytes(), 'uptane').verify(keys, role)).toBe(1);
  });

  it('accepts a pretty-printed file signed over its canonical form (falls back to canonicalizing)', async () => {
    const md = await signedTargets();
    const pretty = JSON.stringify(md.toJSON(), null, 2);
    expect(parseTargets(pretty, 'uptane').verify(keys, role)).toBe(1);
  });

  it('refuses any change inside signed, whichever path checks it', async () => {
    const md = await signedTargets();
    const text = Buffer.from(md.toBytes()).toString('utf8');
    for (const tampered of [text.replace('"version":3', '"version":4'), text.replace('a.bin', 'b.bin'), text.replace('"hw"', '"hx"')]) {
      expect(tampered).not.toBe(text);
      expect(() => parseTargets(tampered, 'uptane').verify(keys, role)).toThrow(SignatureError);
    }
  });

  it('accepts a payload whose exact non-canonical bytes the key signed (only a key holder can make one)', async () => {
    const md = await signedTargets();
    const signedText = JSON.stringify(md.toJSON()['signed'], null, 1);
    const sig = await signer.sign(Buffer.from(signedText, 'utf8'));
    const doc = `{"signatures":[{"keyid":"${signer.publicKey.keyId('uptane')}","method":"ed25519","sig":"${Buffer.from(sig).toString('base64')}"}],"signed":${signedText}}`;
    const parsed = parseTargets(doc, 'uptane');
    expect(parsed.verify(keys, role)).toBe(1);
    expect(parsed.signed.version).toBe(3);
  });

  it('records the exact text of a top-level member, which parses to that member', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.jsonValue(), fc.constantFrom(0, 1, 2), (signed, other, indent) => {
        const doc = JSON.stringify({ other, signed }, null, indent);
        let expected: unknown;
        try {
          expected = parseJson(doc, { integersOnly: false });
        } catch {
          return; // not strict JSON (e.g. floats beyond 2^53): not our concern here
        }
        const { value, memberText } = parseJsonWithMember(doc, 'signed', { integersOnly: false });
        expect(value).toEqual(expected);
        expect(parseJson(memberText as string, { integersOnly: false })).toEqual((expected as Record<string, unknown>)['signed']);
      }),
      { numRuns: 300 },
    );
    expect(parseJsonWithMember('{"x":{"signed":1}}', 'signed').memberText).toBeUndefined();
    expect(Buffer.from(canonicalize({ signed: { b: 1, a: 2 } }, 'uptane')).toString()).toBe('{"signed":{"a":2,"b":1}}');
  });
});
