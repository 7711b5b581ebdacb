// Command vaultshamir runs HashiCorp Vault's own Shamir implementation, so Sealkeep's tests can
// check that shares cross between the two in both directions.
//
//	vaultshamir combine            < hex shares, one per line   -> hex secret
//	vaultshamir split N T SECRET   (hex secret)                 -> hex shares, one per line
package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/shamir"
)

func fail(err error) {
	fmt.Fprintln(os.Stderr, "vaultshamir:", err)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: vaultshamir combine | split N T SECRET_HEX"))
	}
	switch os.Args[1] {
	case "combine":
		var parts [][]byte
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" {
				continue
			}
			b, err := hex.DecodeString(line)
			if err != nil {
				fail(err)
			}
			parts = append(parts, b)
		}
		secret, err := shamir.Combine(parts)
		if err != nil {
			fail(err)
		}
		fmt.Println(hex.EncodeToString(secret))
	case "split":
		if len(os.Args) != 5 {
			fail(fmt.Errorf("usage: vaultshamir split N T SECRET_HEX"))
		}
		n, err := strconv.Atoi(os.Args[2])
		if err != nil {
			fail(err)
		}
		t, err := strconv.Atoi(os.Args[3])
		if err != nil {
			fail(err)
		}
		secret, err := hex.DecodeString(os.Args[4])
		if err != nil {
			fail(err)
		}
		shares, err := shamir.Split(secret, n, t)
		if err != nil {
			fail(err)
		}
		for _, s := range shares {
			fmt.Println(hex.EncodeToString(s))
		}
	default:
		fail(fmt.Errorf("unknown mode %q", os.Args[1]))
	}
}
