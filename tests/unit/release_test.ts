/**
 * The release flow: tag verification against an allow-list of keys (with
 * throwaway GPG keys) and PPA source packages from annotated tags only. The local .deb
 * is package_test.ts (a file of its own, so that tier 1 builds both at once).
 */

import assert from "node:assert/strict";
import { ROOT } from "../lib/aos.ts";
import { run } from "../lib/proc.ts";

interface Repo {
  dir: string;
  gnupg: string;
  env: Record<string, string>;
}

async function sh(script: string, env: Record<string, string>, cwd?: string) {
  const r = await run(["bash", "-c", cwd ? `cd '${cwd}' && ${script}` : script], { env });
  if (r.code !== 0) throw new Error(`${script}: ${r.code} ${r.stderr}`);
  return r.stdout.trim();
}

/** A scratch repository and a GNUPGHOME with two throwaway keys: "allowed" and "stranger". */
async function scratch(): Promise<Repo & { allowedKey: string; strangerKey: string }> {
  const dir = await Deno.makeTempDir({ prefix: "aosu-release-" });
  const gnupg = `${dir}/gnupg`;
  await Deno.mkdir(gnupg, { mode: 0o700 });
  const env = {
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    GNUPGHOME: gnupg,
    GIT_AUTHOR_NAME: "Test",
    GIT_AUTHOR_EMAIL: "test@example.invalid",
    GIT_COMMITTER_NAME: "Test",
    GIT_COMMITTER_EMAIL: "test@example.invalid",
    HOME: dir,
  };
  for (const who of ["allowed", "stranger"]) {
    await sh(
      `gpg --batch --passphrase '' --quick-gen-key '${who} <${who}@example.invalid>' ed25519 sign never`,
      env,
    );
  }
  const fpr = (who: string) =>
    sh(
      `gpg --batch --with-colons --fingerprint '${who}@' | awk -F: '$1=="fpr"{print $10; exit}'`,
      env,
    );
  await sh(
    "git init -q repo && cd repo && echo x > f && git add f && git commit -qm one",
    env,
    dir,
  );
  return {
    dir: `${dir}/repo`,
    gnupg,
    env,
    allowedKey: await fpr("allowed"),
    strangerKey: await fpr("stranger"),
  };
}

Deno.test({
  name: "verify_tag.sh accepts only annotated tags signed by an allowed key",
  sanitizeResources: false,
}, async (t) => {
  const repo = await scratch();
  const base = repo.dir.replace(/\/repo$/, "");
  try {
    const pub = await sh(`gpg --batch --armor --export ${repo.allowedKey}`, repo.env);
    const verify = async (tag: string, keys = pub) => {
      // A fresh, empty GNUPGHOME: the script must trust nothing but TAG_SIGNING_PUBKEYS.
      const env = { ...repo.env, TAG_SIGNING_PUBKEYS: keys, GNUPGHOME: `${base}/empty` };
      await Deno.mkdir(`${base}/empty`, { recursive: true, mode: 0o700 });
      return await run([
        "bash",
        "-c",
        `cd '${repo.dir}' && bash '${ROOT}/packaging/verify_tag.sh' ${tag}`,
      ], { env });
    };
    await sh(`git tag -s -u ${repo.allowedKey} -m 'Release 1.0.0' v1.0.0`, repo.env, repo.dir);
    await sh(`git tag -s -u ${repo.strangerKey} -m 'Release 1.0.1' v1.0.1`, repo.env, repo.dir);
    await sh(`git tag -a -m 'Release 1.0.2' v1.0.2`, repo.env, repo.dir);
    await sh(`git tag v1.0.3`, repo.env, repo.dir);

    await t.step("signed by a listed key: passes", async () => {
      const r = await verify("v1.0.0");
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`signed by allowed key ${repo.allowedKey}`));
    });
    await t.step("signed by an unlisted key: refused", async () => {
      const r = await verify("v1.0.1");
      assert.equal(r.code, 1);
      assert.match(r.stderr, /signed by a key that is not in TAG_SIGNING_PUBKEYS/);
    });
    await t.step("annotated but unsigned: refused", async () => {
      const r = await verify("v1.0.2");
      assert.equal(r.code, 1);
      assert.match(r.stderr, /is not signed/);
    });
    await t.step("lightweight: refused", async () => {
      const r = await verify("v1.0.3");
      assert.equal(r.code, 1);
      assert.match(r.stderr, /lightweight/);
    });
    await t.step("no allowed keys configured: refused", async () => {
      const r = await verify("v1.0.0", "");
      assert.equal(r.code, 1);
      assert.match(r.stderr, /TAG_SIGNING_PUBKEYS is empty/);
    });
  } finally {
    await run(["gpgconf", "--kill", "all"], { env: repo.env });
    await Deno.remove(base, { recursive: true }).catch(() => {});
  }
});

Deno.test({
  name: "build_package.sh --ppa builds a signed source package from the tag, and refuses otherwise",
  sanitizeResources: false,
}, async (t) => {
  const keys = await scratch();
  const base = keys.dir.replace(/\/repo$/, "");
  const clone = `${base}/aos-unit`;
  const env = {
    ...keys.env,
    AOS_UNIT_DENO_DIR: Deno.env.get("DENO_DIR") ?? `${ROOT}/.toolchain/deno_dir`,
    DEBFULLNAME: "Test",
    DEBEMAIL: "test@example.invalid",
  };
  try {
    await sh(`git clone -q '${ROOT}' '${clone}'`, env);
    await sh(
      `ln -s '${ROOT}/packaging/toolchain/node_modules' packaging/toolchain/node_modules`,
      env,
      clone,
    );
    const ppa = (extra = "") =>
      run([
        "bash",
        "-c",
        `cd '${clone}' && bash packaging/build_package.sh --ppa --series noble --out '${base}/out' ${extra}`,
      ], { env });

    await t.step("without a tag: refused", async () => {
      const r = await ppa();
      assert.equal(r.code, 1);
      assert.match(r.stderr, /no vX\.Y\.Z tag/);
    });
    await t.step("lightweight tag: refused", async () => {
      await sh("git tag v9.9.8", env, clone);
      const r = await ppa();
      assert.equal(r.code, 1);
      assert.match(r.stderr, /lightweight tag/);
    });
    await t.step("dirty tree: refused", async () => {
      await sh(`git tag -a -m 'Release 9.9.9\n\nFirst line of notes.' v9.9.9`, env, clone);
      await Deno.writeTextFile(`${clone}/dirty`, "x");
      const r = await ppa();
      assert.equal(r.code, 1);
      assert.match(r.stderr, /dirty tree/);
      await Deno.remove(`${clone}/dirty`);
    });
    await t.step(
      "annotated tag on a clean tree: .dsc, .changes and tarball, version 9.9.9~noble, signed",
      async () => {
        // gzip: xz would spend ~25 s of CPU on dpkg-source's own work, which tests nothing here.
        const r = await ppa(`--sign-key ${keys.allowedKey} --compress gzip`);
        assert.equal(r.code, 0, r.stderr);
        const files = [...Deno.readDirSync(`${base}/out`)].map((e) => e.name).sort();
        assert.ok(files.includes("aos-unit_9.9.9~noble.dsc"), files.join(" "));
        assert.ok(files.includes("aos-unit_9.9.9~noble_source.changes"), files.join(" "));
        assert.ok(
          files.some((f) => /^aos-unit_9\.9\.9~noble\.tar\.(xz|gz)$/.test(f)),
          files.join(" "),
        );
        const changes = await Deno.readTextFile(`${base}/out/aos-unit_9.9.9~noble_source.changes`);
        assert.match(changes, /-----BEGIN PGP SIGNATURE-----/);
        assert.match(changes, /Distribution: noble/);
        assert.match(changes, /Release 9\.9\.9/, "the changelog comes from the tag message");
      },
    );
  } finally {
    await run(["gpgconf", "--kill", "all"], { env: keys.env });
    await Deno.remove(base, { recursive: true }).catch(() => {});
  }
});
