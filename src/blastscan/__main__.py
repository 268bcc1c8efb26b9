from blastscan.cli import main

main()
