/** Namespaces: each with its own Image and Director repositories, keys and device CA; nothing crosses between them. */
import type { Storage } from '../storage/store.js';
import type { ImageRepository } from '../imagerepo/service.js';
import type { Director } from '../director/service.js';
import type { Provisioning } from '../provisioning/service.js';
import { badRequest, conflict } from '../errors.js';

export const NAMESPACE_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;

export class Namespaces {
  constructor(
    private readonly storage: Storage,
    private readonly imageRepo: ImageRepository,
    private readonly director: Director,
    private readonly provisioning: Provisioning,
    private readonly clock: () => Date,
  ) {}

  /** Creates a namespace with both repositories in one transaction, then its device CA. */
  async create(name: string, options: { ifMissing?: boolean } = {}): Promise<boolean> {
    if (!NAMESPACE_RE.test(name)) throw badRequest('invalid_namespace', 'namespace names are 1-64 characters of a-z 0-9 -, starting with a letter or digit');
    const created = await this.storage.transaction(async (store) => {
      if (!(await store.createNamespace(name, this.clock().getTime()))) {
        if (options.ifMissing) return false;
        throw conflict('namespace_exists', `namespace ${name} exists already`);
      }
      await this.imageRepo.create(store, name);
      await this.director.create(store, name);
      return true;
    });
    await this.provisioning.ensureDeviceCa(name);
    return created;
  }

  async list(): Promise<string[]> {
    return (await this.storage.store.listNamespaces()).map((n) => n.name);
  }
}
