// A small streaming tar reader: enough of POSIX ustar, GNU and pax to read WebDataset shards and the data set
// archives in /work/shared/datasets without an npm dependency.
//
// Format (POSIX.1-1988 ustar, with GNU and POSIX.1-2001 pax extensions): the archive is a run of 512-byte blocks.
// Each member is one header block followed by its data, padded with zeros to a multiple of 512; the archive ends
// with two all-zero blocks. Header fields (byte offsets): name[0,100) mode[100,108) uid gid size[124,136)
// mtime[136,148) chksum[148,156) typeflag[156] linkname[157,257) magic[257,263) version uname gname devmajor
// devminor prefix[345,500). Numbers are octal ASCII, or big-endian base-256 when the first byte has 0x80 set (GNU).
// Names longer than 100 bytes come either as a GNU 'L' member (its data is the next member's name) or as a pax 'x'
// member (records "LEN key=value\n", keys `path`, `linkpath`, `size`). pax 'g' globals are parsed and ignored.
//
// What differs from a full tar: every member's data is read into one Buffer (fine for images, annotations and
// shards of small samples; not for multi-GB members); sparse files, volumes and devices are reported as "other".
import * as fs from "fs";
import * as stream from "stream";
import * as zlib from "zlib";

const BLOCK = 512;

export type TarEntryType = "file" | "directory" | "symlink" | "hardlink" | "other";

export interface TarEntry {
  /** Member path as stored (long names resolved), "/"-separated, without a trailing "/" for directories. */
  name: string;
  type: TarEntryType;
  /** Permission bits from the header. */
  mode: number;
  /** Modification time, seconds since the epoch. */
  mtime: number;
  /** Target of a symlink or hard link, "" otherwise. */
  linkName: string;
  /** The member's data (empty for directories and links); its length is the member's size. */
  data: Buffer;
}

export interface TarReadOptions {
  /** Name of the archive, for error messages. */
  source?: string;
}

/** Pulls exact byte counts out of an async stream of chunks, copying only what it hands out. */
class ChunkReader {
  private chunks: Buffer[] = [];
  private available = 0;
  private ended = false;
  /** Bytes consumed so far: the offset of the next byte, for error messages. */
  offset = 0;

  constructor(private readonly it: AsyncIterator<Buffer | Uint8Array | string>) {}

  private async fill(n: number): Promise<void> {
    while (this.available < n && !this.ended) {
      const r = await this.it.next();
      if (r.done) this.ended = true;
      else {
        const chunk = typeof r.value === "string" ? Buffer.from(r.value, "latin1") : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
        if (chunk.length > 0) {
          this.chunks.push(chunk);
          this.available += chunk.length;
        }
      }
    }
  }

  /** Exactly n bytes (a fresh copy), or null at a clean end of input; a partial read is an error. */
  async read(n: number, what: string): Promise<Buffer | null> {
    await this.fill(n);
    if (this.available === 0 && n > 0) return null;
    if (this.available < n) throw new Error(`unexpected end of archive in ${what} at offset ${this.offset + this.available} (needed ${n} bytes, got ${this.available})`);
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const head = this.chunks[0]!;
      const take = Math.min(head.length, n - filled);
      head.copy(out, filled, 0, take);
      filled += take;
      if (take === head.length) this.chunks.shift();
      else this.chunks[0] = head.subarray(take);
    }
    this.available -= n;
    this.offset += n;
    return out;
  }

  /** Reads n bytes that must be there. */
  async readExact(n: number, what: string): Promise<Buffer> {
    const b = await this.read(n, what);
    if (b === null) throw new Error(`unexpected end of archive in ${what} at offset ${this.offset}`);
    return b;
  }

  async close(): Promise<void> {
    await this.it.return?.();
  }
}

/** NUL-terminated string field. */
function field(h: Buffer, start: number, length: number): string {
  const end = h.indexOf(0, start);
  return h.toString("utf8", start, end < 0 || end > start + length ? start + length : end);
}

/** Numeric field: octal ASCII (space/NUL padded), or GNU base-256 when the top bit of the first byte is set. */
function numberField(h: Buffer, start: number, length: number): number {
  if (h[start]! & 0x80) {
    let v = h[start]! & 0x7f;
    for (let i = start + 1; i < start + length; i++) v = v * 256 + h[i]!;
    return v;
  }
  const text = h.toString("latin1", start, start + length).replace(/[\0 ]+$/g, "").trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new Error(`bad octal number "${text}" in tar header`);
  return parseInt(text, 8);
}

/** Header checksum: the byte sum with the chksum field read as 8 spaces (unsigned; old tars used signed bytes). */
function checksumOk(h: Buffer): boolean {
  let stored: number;
  try {
    stored = numberField(h, 148, 8);
  } catch {
    return false; // not even a number: not a header
  }
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  return stored === unsigned || stored === signed;
}

/** pax extended header records: "LEN key=value\n", where LEN counts the whole record in bytes. */
export function parsePax(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    const space = data.indexOf(0x20, pos);
    if (space < 0) break;
    const len = parseInt(data.toString("latin1", pos, space), 10);
    if (!Number.isFinite(len) || len <= 0 || pos + len > data.length) throw new Error(`bad pax record at byte ${pos}`);
    const record = data.toString("utf8", space + 1, pos + len - 1); // drop the trailing "\n"
    const eq = record.indexOf("=");
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    pos += len;
  }
  return out;
}

function entryType(flag: string): TarEntryType {
  switch (flag) {
    case "0": case "\0": case "7": return "file"; // '7' is a contiguous file
    case "5": return "directory";
    case "2": return "symlink";
    case "1": return "hardlink";
    default: return "other";
  }
}

/**
 * Reads a tar stream member by member. Directories are yielded too (type "directory"); callers that only want
 * files filter on `type`. Metadata members (GNU 'L'/'K', pax 'x'/'g') are consumed and applied, never yielded.
 * Breaking out of the loop closes the input.
 */
export async function* readTar(input: AsyncIterable<Buffer | Uint8Array | string>, options: TarReadOptions = {}): AsyncGenerator<TarEntry> {
  const where = options.source ?? "tar";
  const reader = new ChunkReader(input[Symbol.asyncIterator]());
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax = new Map<string, string>();
  try {
    for (;;) {
      const headerOffset = reader.offset;
      const h = await reader.read(BLOCK, "a header");
      if (h === null) return; // no end-of-archive blocks: tolerated, like GNU tar
      if (h.every((b) => b === 0)) return; // end of archive (the second zero block is not needed)
      if (!checksumOk(h)) throw new Error(`bad header checksum at offset ${headerOffset} (not a tar file, or corrupt)`);

      const flag = String.fromCharCode(h[156]!);
      const ustar = h.toString("latin1", 257, 263) === "ustar\0"; // POSIX; GNU writes "ustar  \0" and no prefix
      let name = field(h, 0, 100);
      if (ustar) {
        const prefix = field(h, 345, 155);
        if (prefix) name = `${prefix}/${name}`;
      }
      let size = numberField(h, 124, 12);
      if (pax.has("size")) size = Number(pax.get("size"));
      if (!Number.isSafeInteger(size) || size < 0) throw new Error(`bad member size ${size} at offset ${headerOffset}`);

      const data = await reader.readExact(size, `the data of "${name}"`);
      const pad = (BLOCK - (size % BLOCK)) % BLOCK;
      if (pad) await reader.readExact(pad, `the padding of "${name}"`);

      // Metadata members apply to the next real member.
      if (flag === "L") { longName = field(data, 0, data.length); continue; }
      if (flag === "K") { longLink = field(data, 0, data.length); continue; }
      if (flag === "x") { pax = parsePax(data); continue; }
      if (flag === "g") continue;

      name = pax.get("path") ?? longName ?? name;
      const linkName = pax.get("linkpath") ?? longLink ?? field(h, 157, 100);
      longName = longLink = undefined;
      pax = new Map();

      const type = entryType(flag);
      yield {
        name: type === "directory" ? name.replace(/\/+$/, "") : name,
        type,
        mode: numberField(h, 100, 8),
        mtime: numberField(h, 136, 12),
        linkName,
        data,
      };
    }
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  } finally {
    await reader.close();
  }
}

/** True for names that say gzip: .tar.gz, .tgz, .gz. */
export function isGzipName(file: string): boolean {
  return /\.(t?gz)$/i.test(file);
}

/** A file as a stream of chunks, gunzipped when its name says gzip. Errors of either stage surface on the result. */
export function openArchiveStream(file: string): stream.Readable {
  const raw = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  if (!isGzipName(file)) return raw;
  const gunzip = zlib.createGunzip({ chunkSize: 1 << 20 });
  stream.pipeline(raw, gunzip, () => {}); // NOTE: pipeline destroys gunzip with raw's error; the reader sees it
  return gunzip;
}

/** Reads a .tar, .tar.gz or .tgz file member by member. */
export function readTarFile(file: string): AsyncGenerator<TarEntry> {
  return readTar(openArchiveStream(file), { source: file });
}
