/**
 * The Agent's origin groups, the other kind of target (group/group.ts): an origin's overrides with a group field
 * (`endpoints`, or `collapse`, `retryBudget`… of its own URL alone), keyed by the URL's origin, and the named groups
 * of `AgentOptions.groups`, keyed by their name. Checked before anything is made; each group's active checks start
 * when it is added, its collapser made with it.
 */
import type { Endpoint } from '../group/endpoint.js';
import { Group, type GroupStats } from '../group/group.js';
import type { CheckFn } from '../group/health.js';
import { GROUP_KEYS, resolveGroupOptions, type GroupOptions } from '../group/options.js';
import { ErrorCode, OriginlinkError } from '../errors.js';
import { configError } from '../pool/options.js';
import { Collapser, type CollapseHost } from './collapse.js';
import type { AgentRequest } from './agent-request.js';
import { checkKeys, ORIGIN_KEYS, type AgentOptions, type OriginOverrides } from './options.js';

/** What AgentOptions.groups may name a group: letters, digits, `.`, `_`, `-` (never a URL). */
const GROUP_NAME_RE = /^[A-Za-z0-9._-]+$/;

export class AgentGroups {
  /** By their key: a URL's origin (`scheme://host[:port]` as URL.origin writes it), or `group:NAME`. */
  #byKey = new Map<string, Group>();
  #named = new Map<string, Group>();
  /** Per cached origin URL: its group or null, so a request looks it up once. */
  #ofUrl = new WeakMap<URL, Group | null>();
  #collapsers = new Map<Group, Collapser<AgentRequest>>();
  /** A group's overrides for each of its endpoints that has none of its own (the first group's). */
  readonly endpointOverrides = new Map<string, OriginOverrides>();

  /** Every group definition of `opts` checked: a bad one throws OL_INVALID_CONFIG before anything is made. */
  static check(opts: AgentOptions): void {
    for (const [k, o] of Object.entries(opts.origins ?? {}))
      if (isGroup(o)) resolveGroupOptions(groupOptions(k, o), `origins["${k}"]`);
    for (const [name, o] of Object.entries(opts.groups ?? {})) {
      const where = `groups["${name}"]`;
      if (!GROUP_NAME_RE.test(name)) throw configError(where, 'a group name is letters, digits, ".", "_" and "-"');
      checkKeys(o, ORIGIN_KEYS, where);
      if (o === null || typeof o !== 'object' || o.endpoints === undefined)
        throw configError(`${where}.endpoints`, 'a named group needs its endpoints');
      resolveGroupOptions(namedGroupOptions(name, o), where);
    }
  }

  /** Make every group of `opts` (checked) and start its checks. */
  start(opts: AgentOptions, collapse: CollapseHost<AgentRequest>, check: CheckFn): void {
    for (const [k, o] of Object.entries(opts.origins ?? {}))
      if (isGroup(o)) this.#add(new URL(k).origin, groupOptions(k, o), o, `origins["${k}"]`, collapse, check);
    for (const [name, o] of Object.entries(opts.groups ?? {}))
      this.#named.set(
        name,
        this.#add(`group:${name}`, namedGroupOptions(name, o), o, `groups["${name}"]`, collapse, check),
      );
  }

  #add(
    key: string,
    def: GroupOptions,
    o: OriginOverrides,
    where: string,
    collapse: CollapseHost<AgentRequest>,
    check: CheckFn,
  ): Group {
    const g = new Group(key, resolveGroupOptions(def, where));
    this.#byKey.set(key, g);
    for (const e of g.endpoints) if (!this.endpointOverrides.has(e.origin)) this.endpointOverrides.set(e.origin, o);
    if (g.opts.collapse !== null) this.#collapsers.set(g, new Collapser(g.opts.collapse, g, collapse));
    g.startChecks(check);
    return g;
  }

  get size(): number {
    return this.#byKey.size;
  }

  /** The group named `name` (a request's `group`), or OL_INVALID_ARGUMENT. */
  named(name: string): Group {
    const g = this.#named.get(name);
    if (g === undefined)
      throw new OriginlinkError(ErrorCode.INVALID_ARGUMENT, 'local', `no group named ${JSON.stringify(name)}`, {
        details: { field: 'group' },
      });
    return g;
  }

  /** The group a URL's origin names, or null (remembered on the Agent's own URL objects: `owned`). */
  forUrl(u: URL, owned: boolean): Group | null {
    if (!owned) return this.#byKey.get(u.origin) ?? null;
    let g = this.#ofUrl.get(u);
    if (g === undefined) {
      g = this.#byKey.get(u.origin) ?? null;
      this.#ofUrl.set(u, g);
    }
    return g;
  }

  collapser(g: Group): Collapser<AgentRequest> | undefined {
    return this.#collapsers.get(g);
  }

  /**
   * The endpoint of the group `key` (a name or an origin) for a connection of its own (Agent.tunnelEndpoint): picked
   * as a first attempt is, or once those in `tried` failed as a retry is. Null: no such group, or none left untried.
   */
  tunnelEndpoint(key: string, tried: readonly string[]): string | null {
    const g = GROUP_NAME_RE.test(key) ? this.#named.get(key) : this.#byKey.get(new URL(key).origin);
    if (g === undefined) return null;
    const now = performance.now();
    if (tried.length === 0) return g.pick(now).origin;
    const eps: Endpoint[] = g.endpoints.filter((e) => tried.includes(e.origin));
    const next = eps.length === 0 ? g.pick(now) : g.pickAgain(eps, now);
    return tried.includes(next.origin) ? null : next.origin;
  }

  stats(): GroupStats[] {
    return [...this.#byKey.values()].map((g) => g.stats());
  }

  /** Carry each endpoint's state over from `from`'s group of the same key (a config reload); `from` stops checking. */
  adopt(from: AgentGroups): void {
    for (const [k, g] of this.#byKey) {
      const old = from.#byKey.get(k);
      if (old) g.adopt(old);
    }
  }

  close(): void {
    for (const g of this.#byKey.values()) g.close();
  }
}

/** An origin's overrides define a group: they hold a group field (its name alone does not). */
function isGroup(o: OriginOverrides): boolean {
  return GROUP_KEYS.some((f) => f !== 'name' && o[f] !== undefined);
}

/** The group fields of an origin's overrides. */
function groupFields(o: OriginOverrides): Partial<GroupOptions> {
  const out: Record<string, unknown> = {};
  for (const f of GROUP_KEYS) if (o[f] !== undefined) out[f] = o[f];
  return out as Partial<GroupOptions>;
}

/** A named group's definition: its group fields and endpoints, named by its name unless it names itself. */
function namedGroupOptions(name: string, o: OriginOverrides): GroupOptions {
  return { ...groupFields(o), endpoints: o.endpoints ?? [], name: o.name ?? name };
}

/** The group an origin's overrides define: its group fields, its endpoints (or its own URL alone), named by its key. */
function groupOptions(key: string, o: OriginOverrides): GroupOptions {
  const origin = new URL(key).origin;
  return { ...groupFields(o), endpoints: o.endpoints ?? [{ url: origin }], name: o.name ?? origin };
}
