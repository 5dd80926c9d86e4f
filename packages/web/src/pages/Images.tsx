import { useRef, useState, type FormEvent } from 'react';
import { api, ApiError, uploadImage, type Image } from '../api';
import { Ago, Empty, ErrorBox, Hash, Loading, Notice, PageTitle, Pager, Section } from '../components';
import { formatBytes, guessNameVersion, splitList } from '../format';
import { useDebounced, useLoad } from '../hooks';
import { Link } from '../router';

const PAGE = 25;

export function Images() {
  const [text, setText] = useState('');
  const q = useDebounced(text.trim(), 250);
  const [offset, setOffset] = useState(0);
  const [uploaded, setUploaded] = useState<Image | undefined>();
  const list = useLoad(`images?${q}|${offset}`, () => api.images({ nameContains: q || undefined, offset, limit: PAGE }));

  return (
    <>
      <PageTitle title="Images">Software images in the Image repository. Uploading one signs it into targets, snapshot and timestamp.</PageTitle>
      <Upload
        onUploaded={(img) => {
          setUploaded(img);
          setOffset(0);
          list.reload();
        }}
      />
      {uploaded ? (
        <Notice kind="success">
          Uploaded <strong className="mono">{uploaded.filename}</strong> ({formatBytes(uploaded.length)}).{' '}
          <Link to={`/updates/new?image=${encodeURIComponent(uploaded.filename)}`}>Launch an update with it</Link>
        </Notice>
      ) : null}

      <Section
        title="All images"
        actions={
          <span className="field compact">
            <label htmlFor="img-q" className="visually-hidden">
              Filter images by name
            </label>
            <input
              id="img-q"
              type="search"
              placeholder="Filter by name"
              value={text}
              onChange={(e) => {
                setText(e.target.value);
                setOffset(0);
              }}
            />
          </span>
        }
      >
        <ErrorBox error={list.error} title="Could not load images." />
        {list.data === undefined ? (
          list.loading ? (
            <Loading />
          ) : null
        ) : list.data.total === 0 ? (
          <Empty>{q ? 'No image matches.' : 'No images yet: upload one above.'}</Empty>
        ) : (
          <>
            <table className="images">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Version</th>
                  <th scope="col">File</th>
                  <th scope="col">Hardware ids</th>
                  <th scope="col">Size</th>
                  <th scope="col" title="Release counter: devices refuse images with a lower one than they run">
                    Release
                  </th>
                  <th scope="col">SHA-256</th>
                  <th scope="col">Uploaded</th>
                  <th scope="col">
                    <span className="visually-hidden">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {list.data.values.map((img) => (
                  <tr key={img.filename}>
                    <td>{img.name ?? <span className="muted">–</span>}</td>
                    <td>{img.version ?? <span className="muted">–</span>}</td>
                    <td className="mono">
                      {img.filename}
                      {!img.stored ? <div className="muted small">external: {img.uri}</div> : null}
                    </td>
                    <td>
                      {img.hardwareIds.map((h) => (
                        <span className="tag mono" key={h}>
                          {h}
                        </span>
                      ))}
                    </td>
                    <td>{formatBytes(img.length)}</td>
                    <td>{img.releaseCounter ?? <span className="muted">–</span>}</td>
                    <td>
                      <Hash value={img.hashes['sha256']} />
                    </td>
                    <td>
                      <Ago iso={img.createdAt} />
                    </td>
                    <td className="right">
                      <Link to={`/updates/new?image=${encodeURIComponent(img.filename)}`} aria-label={`Launch an update with ${img.filename}`}>
                        Launch update
                      </Link>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            <Pager label="Images" offset={offset} limit={PAGE} total={list.data.total} onChange={setOffset} />
          </>
        )}
      </Section>
    </>
  );
}

function Upload({ onUploaded }: { onUploaded: (img: Image) => void }) {
  const hwids = useLoad('hardware-ids', () => api.hardwareIds());
  const [file, setFile] = useState<File | undefined>();
  const [filename, setFilename] = useState('');
  const [name, setName] = useState('');
  const [version, setVersion] = useState('');
  const [hardware, setHardware] = useState('');
  const [counter, setCounter] = useState('');
  const [progress, setProgress] = useState<{ sent: number; total: number } | undefined>();
  const [error, setError] = useState<ApiError | undefined>();
  const [invalid, setInvalid] = useState<string | undefined>();
  const abort = useRef<AbortController | undefined>(undefined);
  const fileInput = useRef<HTMLInputElement>(null);

  const pick = (f: File | undefined) => {
    setFile(f);
    if (!f) return;
    setFilename(f.name);
    const g = guessNameVersion(f.name);
    if (!name) setName(g.name);
    if (!version) setVersion(g.version);
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    const ids = splitList(hardware);
    const problem = !file
      ? 'Choose a file.'
      : !filename.trim()
        ? 'Give the file name devices will see.'
        : !name.trim() || !version.trim()
          ? 'Give a name and a version.'
          : ids.length === 0
            ? 'Name at least one hardware id.'
            : counter !== '' && !/^\d+$/.test(counter)
              ? 'The release counter is a whole number (0 or more).'
              : undefined;
    setInvalid(problem);
    if (problem || !file) return;
    const ac = new AbortController();
    abort.current = ac;
    setProgress({ sent: 0, total: file.size });
    try {
      const img = await uploadImage(
        file,
        {
          filename: filename.trim(),
          name: name.trim(),
          version: version.trim(),
          hardwareIds: ids,
          ...(counter !== '' ? { releaseCounter: Number(counter) } : {}),
        },
        (sent, total) => setProgress({ sent, total }),
        ac.signal,
      );
      setFile(undefined);
      setFilename('');
      setName('');
      setVersion('');
      setCounter('');
      if (fileInput.current) fileInput.current.value = '';
      onUploaded(img);
    } catch (err) {
      setError(err instanceof ApiError ? err : new ApiError(0, 'client_error', String(err)));
    } finally {
      setProgress(undefined);
      abort.current = undefined;
    }
  };

  const pct = progress && progress.total > 0 ? Math.floor((progress.sent / progress.total) * 100) : 0;
  return (
    <Section title="Upload an image">
      <form className="grid-form" onSubmit={submit} noValidate aria-describedby={invalid ? 'upload-invalid' : undefined}>
        <div className="field wide">
          <label htmlFor="up-file">File</label>
          <input id="up-file" ref={fileInput} type="file" onChange={(e) => pick(e.target.files?.[0])} disabled={progress !== undefined} />
        </div>
        <div className="field">
          <label htmlFor="up-filename">File name on devices</label>
          <input id="up-filename" value={filename} onChange={(e) => setFilename(e.target.value)} disabled={progress !== undefined} spellCheck={false} />
        </div>
        <div className="field">
          <label htmlFor="up-name">Name</label>
          <input id="up-name" value={name} onChange={(e) => setName(e.target.value)} disabled={progress !== undefined} spellCheck={false} />
        </div>
        <div className="field">
          <label htmlFor="up-version">Version</label>
          <input id="up-version" value={version} onChange={(e) => setVersion(e.target.value)} disabled={progress !== undefined} spellCheck={false} />
        </div>
        <div className="field">
          <label htmlFor="up-hw">Hardware ids</label>
          <input
            id="up-hw"
            value={hardware}
            onChange={(e) => setHardware(e.target.value)}
            list="known-hwids"
            placeholder="board-a, board-b"
            aria-describedby="up-hw-help"
            disabled={progress !== undefined}
            spellCheck={false}
          />
          <datalist id="known-hwids">
            {(hwids.data?.values ?? []).map((h) => (
              <option key={h} value={h} />
            ))}
          </datalist>
          <small id="up-hw-help">
            Comma-separated; ECUs of these hardware ids can install it.
            {hwids.data && hwids.data.values.length > 0 ? ` Registered: ${hwids.data.values.join(', ')}.` : ''}
          </small>
        </div>
        <div className="field">
          <label htmlFor="up-counter">Release counter (optional)</label>
          <input
            id="up-counter"
            inputMode="numeric"
            value={counter}
            onChange={(e) => setCounter(e.target.value)}
            aria-describedby="up-counter-help"
            disabled={progress !== undefined}
          />
          <small id="up-counter-help">Devices refuse an image whose counter is lower than the one they run.</small>
        </div>
        <div className="form-actions wide">
          {progress ? (
            <>
              <label htmlFor="up-progress">Uploading {file?.name}</label>
              <progress id="up-progress" max={100} value={pct} aria-valuetext={`${pct}%`}>
                {pct}%
              </progress>
              <span className="mono" aria-live="polite">
                {pct}% · {formatBytes(progress.sent)} of {formatBytes(progress.total)}
              </span>
              <button type="button" className="secondary" onClick={() => abort.current?.abort()}>
                Cancel upload
              </button>
            </>
          ) : (
            <button type="submit">Upload</button>
          )}
        </div>
        {invalid ? (
          <p className="field-error wide" id="upload-invalid" role="alert">
            {invalid}
          </p>
        ) : null}
      </form>
      <ErrorBox error={error} title="The upload failed." />
    </Section>
  );
}
