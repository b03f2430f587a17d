"""Teacher and grader tooling: student versions from master notebooks, and an autograder.

* :mod:`.markers`: nbgrader-style markers (``### BEGIN SOLUTION`` ...) found, checked, stripped;
* :mod:`.release`: ``python -m course_utils release SRC_DIR OUT_DIR``, student notebooks and a key;
* :mod:`.key`: the grader key (exercise list, points, hidden tests);
* :mod:`.kernel`, :mod:`.execute`: running notebook cells in a kernel with hard time limits;
* :mod:`.grade`: ``python -m course_utils grade SUBMISSIONS_DIR --key ... --out grades.csv``;
* :mod:`.feedback`: error messages in a student's words, feedback files, the summary.

See docs/grading.md for the teacher and grader workflow.
"""
