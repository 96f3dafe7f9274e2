#!/usr/bin/env python3
"""Turns containerd's default seccomp profile (the RuntimeDefault profile of a Kubernetes pod on
containerd: contrib/seccomp/seccomp_default.go, `DefaultProfile`) into the JSON data
tests/pod_userns.rs composes an OCI `linux.seccomp` from, for linux/amd64.

    git -C CONTAINERD show COMMIT:contrib/seccomp/seccomp_default.go \
      | scripts/containerd-seccomp.py COMMIT > testdata/pod-userns/containerd-seccomp.json

containerd builds the profile from the container's bounding set, so the data keeps the parts
apart: `always` (every rule for every container on amd64 with a kernel >= 4.8), `by_capability`
(the rules a capability in the bounding set adds) and `without_cap_sys_admin` (what is added when
CAP_SYS_ADMIN is absent: clone without namespace flags, clone3 failing with ENOSYS). The rules are
containerd's, unchanged (Apache-2.0, like containerd); only Go became JSON.
"""
import json
import re
import sys

# The constants the Go source names (linux/amd64).
CONSTS = {
    "unix.AF_ALG": 38,
    "unix.AF_ALG + 1": 39,
    "unix.AF_VSOCK": 40,
    "unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | "
    "unix.CLONE_NEWNET | unix.CLONE_NEWCGROUP": 0x00020000
    | 0x04000000
    | 0x08000000
    | 0x10000000
    | 0x20000000
    | 0x40000000
    | 0x02000000,
}
OPS = {"specs.OpLessThan": "SCMP_CMP_LT", "specs.OpEqualTo": "SCMP_CMP_EQ", "specs.OpGreaterThan": "SCMP_CMP_GT",
       "specs.OpMaskedEqual": "SCMP_CMP_MASKED_EQ"}
ENOSYS = 38


def names(block):
    return re.findall(r'"([a-z0-9_]+)"', block.split("Action:")[0])


def value(expr):
    expr = expr.strip().rstrip(",")
    if expr in CONSTS:
        return CONSTS[expr]
    return int(expr, 0)


def rules(region):
    """Every `{ Names: …, Action: …, Args: … }` literal in `region`, in order."""
    out = []
    for m in re.finditer(r"Names:\s*\[\]string\{(.*?)\},\s*Action:\s*specs\.(\w+)(.*?)(?=Names:|\Z)", region, re.S):
        rule = {"names": re.findall(r'"([a-z0-9_]+)"', m.group(1)), "action": {"ActAllow": "SCMP_ACT_ALLOW",
                                                                              "ActErrno": "SCMP_ACT_ERRNO"}[m.group(2)]}
        args = []
        for a in re.finditer(r"Index:\s*(\d+),\s*Value:\s*(.*?),\s*(?:ValueTwo:\s*(\d+),\s*)?Op:\s*(specs\.\w+)",
                             m.group(3), re.S):
            arg = {"index": int(a.group(1)), "value": value(a.group(2)), "op": OPS[a.group(4)]}
            if a.group(3) is not None:
                arg["valueTwo"] = int(a.group(3))
            args.append(arg)
        if args:
            rule["args"] = args
        if "ErrnoRet: &nosys" in m.group(3):
            rule["errnoRet"] = ENOSYS
        out.append(rule)
    return out


def main():
    commit = sys.argv[1]
    src = sys.stdin.read()
    body = src[src.index("func DefaultProfile"):]
    first, rest = body.split("s := &specs.LinuxSeccomp{", 1)
    always = rules(first)
    kernel = rest[rest.index("kernelversion.GreaterEqualThan"):rest.index("// include by arch")]
    assert "Kernel: 4, Major: 8" in kernel
    always += rules(kernel)
    arch = rest[rest.index("// include by arch"):rest.index("admin := false")]
    amd64 = arch[arch.index('case "amd64":'):arch.index('case "386":')]
    always += rules(amd64)
    caps_region = rest[rest.index("admin := false"):rest.index("if !admin {")]
    by_cap = {}
    for m in re.finditer(r'case "(CAP_\w+)":(.*?)(?=case "CAP_|\Z)', caps_region, re.S):
        by_cap[m.group(1)] = rules(m.group(2))
    no_admin = rest[rest.index("if !admin {"):]
    default = no_admin[no_admin.index("default:"):]
    without = rules(default)
    assert [r["names"] for r in without] == [["clone"], ["clone3"]], without
    json.dump(
        {
            "provenance": f"containerd/containerd {commit}: contrib/seccomp/seccomp_default.go, DefaultProfile, "
                          "linux/amd64, kernel >= 4.8; converted by scripts/containerd-seccomp.py",
            "license": "Apache-2.0 (containerd's); kept as data",
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "always": always,
            "by_capability": by_cap,
            "without_cap_sys_admin": without,
        },
        sys.stdout,
        indent=1,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
