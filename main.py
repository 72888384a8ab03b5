from source_northpass_lms.run import run

if __name__ == "__main__":
    run()
