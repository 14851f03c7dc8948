package bundle

import (
	"fmt"
	"strings"
	"time"

	"github.com/takedown/takedown/internal/evidence"
)

// LeafCheckScript is the bash recipe in a package's README that recomputes
// every shown entry's leaf hash with standard tools; a test runs it.
const LeafCheckScript = `grep -v "$(printf '\t-\t')" leaves.tsv | paste - events.jsonl |
while IFS="$(printf '\t')" read -r idx nonce hash line; do
  got=$({ printf '\000'; printf "$(printf %s "$nonce" | sed 's/../\\x&/g')"; printf %s "$line"; } | sha256sum | cut -d' ' -f1)
  [ "$got" = "$hash" ] || echo "entry $idx: leaf hash mismatch"
done
`

// readme is the package's README: what it holds and how to check it with
// takedown and with standard tools alone.
func readme(cr evidence.CustodyRecord, cp evidence.Checkpoint, k *evidence.Key) []byte {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	p("# Evidence package\n\n")
	p("Exported %s by %s for %s.\n\n", cr.Time.UTC().Format(time.RFC3339), orDash(cr.Who), orDash(cr.ForWhom))
	p("- case: %s\n- window: [%s, %s)\n- events: %d, log entries %d to %d\n", orDash(cr.Case), ptrTime(cr.From), ptrTime(cr.To), cr.Events, cr.First, cr.End-1)
	p("- log: %s, checkpoint size %d\n- signing key: %s\n  (%s)\n\n", cp.Origin, cp.Size, k.Fingerprint(), k.SSHPublicKey())
	p("Obtain the operator's public key **from the operator, through a channel you trust**, not from this\n")
	p("directory: the key files here are checked against it, never trusted on their own.\n\n")
	p(`## Files

| file | what it is |
|---|---|
| events.jsonl | the selected events, one JSON line each, byte for byte as the log stored them |
| leaves.tsv | every log entry from the first to the last selected event: index, nonce (hex; "-" for an entry not in this export), RFC 6962 leaf hash (hex) |
| range-proof.txt | hashes of the subtrees left and right of that range in the checkpoint's tree |
| checkpoint.txt | the log's signed checkpoint (C2SP tlog-checkpoint, Ed25519 signed note) |
| checkpoints/, consistency/ | earlier checkpoints and proofs (RFC 9162 §2.1.4) that each is a prefix of checkpoint.txt |
| custody.json | the custody record of this export, itself a log entry |
| custody.tlog-proof | its inclusion proof (C2SP tlog-proof; "extra" is the entry's nonce) |
| key.pub, key.note, allowed_signers | the signing key as OpenSSH key, note verifier key and ssh-keygen allowed-signers file |
| keys/ | only if the operator rotated the signing key: each rotation record (<size>.json) naming the old and the new key, its SSH signature by the old key (namespace takedown-evidence-key-rotation) and its inclusion proof in checkpoint.txt; they lead from an earlier key to the one that signed this package, so the first key you were given still verifies it |
| SHA256SUMS, SHA256SUMS.sig | the SHA-256 of every other file, and an SSH signature of it (namespace takedown-evidence) |

## Verify with takedown

    takedown evidence verify . --key OPERATOR_KEY

OPERATOR_KEY is a file or string holding the key (ssh-ed25519 line or note verifier key). The command
works offline, lists every check, and exits 0 only when all pass.

## Verify with standard tools

1. Files: `)
	p("`sha256sum -c SHA256SUMS` (every line must say OK; no file may be missing or extra).\n")
	p("2. Signature of the manifest, against the key you trust (put it in your own allowed-signers file:\n")
	p("   `%s namespaces=\"%s\" ssh-ed25519 AAAA…`):\n\n", evidence.Principal, Namespace)
	p("       ssh-keygen -Y verify -f MY_ALLOWED_SIGNERS -I %s -n %s -s SHA256SUMS.sig < SHA256SUMS\n\n", evidence.Principal, Namespace)
	p(`3. Leaf hashes: for each line of leaves.tsv with a nonce, the next line L of events.jsonl (without its
   newline) must give the leaf hash SHA-256(0x00 || nonce || L). In bash, this prints nothing when
   all match:

`)
	for _, line := range strings.Split(LeafCheckScript, "\n") {
		if line != "" {
			p("       %s\n", line)
		}
	}
	p(`
4. Root: the RFC 6962 tree hash of the checkpoint's size is rebuilt from the leaf hashes of the range
   and the subtree hashes in range-proof.txt (each line: first leaf, number of leaves, base64 hash):
   MTH(a, b) is the given hash when [a, b) is a listed subtree or a single leaf of the range; otherwise,
   with k the largest power of two below b-a, SHA-256(0x01 || MTH(a, a+k) || MTH(a+k, b)). MTH(0, size)
   must equal the base64 root on the third line of checkpoint.txt. Because the range is contiguous, a
   dropped, added, reordered or changed entry changes the root.
5. Checkpoint signature: checkpoint.txt is a signed note (golang.org/x/mod/sumdb/note); its signature
   line is "— <origin> base64(4-byte key hash || Ed25519 signature)" over the three text lines.

Entries shown only by their hash belong to other cases or are custody records; the operator can reveal
any of them later (record and nonce), and it must hash to the same leaf.
`)
	return []byte(b.String())
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
