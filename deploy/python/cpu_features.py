"""What this CPU can run fast: bf16 needs AVX512-BF16 or AMX-BF16 (Linux /proc/cpuinfo flags)."""

BF16_FLAGS = ('avx512_bf16', 'amx_bf16')


def cpu_flags():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return set()


def has_bf16():
    return any(flag in cpu_flags() for flag in BF16_FLAGS)
