package kmsgdump

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// CurrentBoot identifies the running boot: the kernel's random boot id
// (/proc/sys/kernel/random/boot_id) and the boot time (btime in /proc/stat).
func CurrentBoot() (Boot, error) {
	id, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return Boot{}, fmt.Errorf("kmsgdump: boot id: %w", err)
	}
	b := Boot{ID: strings.TrimSpace(string(id))}
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return b, fmt.Errorf("kmsgdump: boot time: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(stat))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			sec, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				b.Start = time.Unix(sec, 0).UTC()
			}
		}
	}
	return b, nil
}
