"""Run the real aws-cli with every `*.amazonaws.com` name resolving to one local address.

    python tests/interop/awsvia.py --connect 127.0.0.1:PORT -- s3 ls s3://mraps3sample/

aws-cli then builds exactly the requests it would build for AWS — the MRAP ARN goes to
`https://mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com/` with SigV4A, a bucket to
`https://mraps3sample.s3.amazonaws.com/` with SigV4 — and the Host header, the SNI and the signature
all carry the real names (no port: the URL stays on 443), while the TCP connection goes to the
proxy under test. That is what a pod behind an intercepting proxy sends; `--endpoint-url` would
change the Host header and the SNI, which are the two things under test.

Only `socket.getaddrinfo` is replaced (urllib3, used by botocore, resolves through it), in this
process only, by the same code `mrapsim exec` loads into its child (mrapsim/exec_site/sitecustomize.py);
everything after is aws-cli's own `awscli.clidriver.main()`, as the `aws` script runs it. Outside the
tests, `mrapsim exec --connect HOST:PORT -- aws ...` does the same.
"""

from __future__ import annotations

import sys

from mrapsim.exec_site.sitecustomize import redirect


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] != "--connect" or argv[2] != "--":
        print("usage: awsvia.py --connect HOST:PORT -- AWS-CLI-ARGS...", file=sys.stderr)
        return 2
    host, _, port = argv[1].rpartition(":")
    redirect(host, int(port))
    import awscli.clidriver  # type: ignore[import-untyped]

    sys.argv = ["aws", *argv[3:]]
    result: int = awscli.clidriver.main()
    return result


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
