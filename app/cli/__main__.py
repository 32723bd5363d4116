from deepclust.app.cli import main

main()
